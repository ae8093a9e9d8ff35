package handoff

import (
	"net"
	"testing"
	"time"
)

// TestConnections counts the connections of a host socket through sock_diag:
// queued and accepted ones, not other ports', none once closed.
func TestConnections(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := NewTable(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	want := func(n int) {
		t.Helper()
		got, err := tab.Connections()
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("Connections() = %d, want %d", got, n)
		}
	}
	want(0)
	elsewhere, err := net.Dial("tcp4", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	queued, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	want(1) // in the accept queue: it waits for the server
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	want(1)
	c.Close()
	queued.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := tab.Connections()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d after both ends closed, want 0", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
