package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// eventually polls cond for up to 5 s.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestRelayIdleConnectionHoldsTwoDescriptors: a held, idle connection costs
// the proxy its two sockets and no goroutine; pipes used while bytes were in
// flight go back to the pool and, once the loops are quiet, are closed.
func TestRelayIdleConnectionHoldsTwoDescriptors(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.MaxConns = 1000 })
	// warm up: the loops, a pipe or two, the namespace's prefetch
	c0, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c0, "warm")
	if _, err := bufio.NewReader(c0).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	c0.Close()
	if !eventually(func() bool { return p.active.Load() == 0 }) {
		t.Fatal("warm-up connection never ended")
	}
	time.Sleep(1500 * time.Millisecond) // idle pipes trimmed
	fds0, g0 := openFDs(t), runtime.NumGoroutine()

	const n = 200
	var held []net.Conn
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		fmt.Fprintf(c, "c%d\n", i)
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != fmt.Sprintf("echo: c%d\n", i) {
			t.Fatalf("client %d: %q, %v", i, line, err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	// per connection: the client's socket and the echo server's (this
	// process) and the proxy's two; the echo server's goroutine
	if got, want := openFDs(t)-fds0, 4*n; got != want {
		t.Errorf("descriptors for %d held connections: %d more; want %d (2 per connection in the proxy)", n, got, want)
	}
	if got := runtime.NumGoroutine() - g0; got > n+10 {
		t.Errorf("goroutines for %d held connections: %d more; want at most %d (the echo server's)", n, got, n+10)
	}
	for _, c := range held {
		c.Close()
	}
	if !eventually(func() bool { return p.active.Load() == 0 && openFDs(t) <= fds0+2*pipeIdleMax*maxLoops }) {
		t.Errorf("after the clients left: active %d, descriptors %d more than before", p.active.Load(), openFDs(t)-fds0)
	}
}

// TestRelayBackpressure: a client that does not read stops the proxy from
// reading the backend (at most a pipe and the socket buffers in flight); all
// of it arrives once the client reads.
func TestRelayBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noPipes bool
	}{{"splice", false}, {"copy", true}} {
		t.Run(tc.name, func(t *testing.T) {
			backend := listenLoopback(t)
			const total = 64 << 20
			wrote := make(chan int64, 1)
			go func() {
				c, err := backend.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				n, _ := io.Copy(c, io.LimitReader(zeros{}, total))
				wrote <- n
			}()
			addr, _, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.noPipes = tc.noPipes })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case n := <-wrote:
				t.Fatalf("the backend wrote all %d bytes to a client that read none: the proxy buffered them", n)
			case <-time.After(time.Second):
			}
			n, err := io.Copy(io.Discard, c)
			if err != nil || n != total {
				t.Fatalf("client read %d, %v; want %d", n, err, total)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// TestRelayBulkIntegrity: bytes arrive intact and in order both ways, through
// splice pipes and through the copy fallback.
func TestRelayBulkIntegrity(t *testing.T) {
	for _, noPipes := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPipes=%v", noPipes), func(t *testing.T) {
			backend := listenLoopback(t)
			go func() {
				for {
					c, err := backend.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						io.Copy(c, c) // echo until EOF, then close
					}()
				}
			}()
			addr, _, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.noPipes = noPipes })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			data := make([]byte, 8<<20)
			for i := range data {
				data[i] = byte(i*7 + i>>11)
			}
			go func() {
				c.Write(data)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("echoed %d bytes (%v), equal %v; want the %d sent", len(got), err, bytes.Equal(got, data), len(data))
			}
		})
	}
}

// TestRelayResetBothWays: a reset on one side reaches the other side as a
// reset, not as an orderly end.
func TestRelayResetBothWays(t *testing.T) {
	t.Run("backend resets", func(t *testing.T) {
		backend := listenLoopback(t)
		go func() {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 1))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}()
		addr, _, _ := startProxy(t, backend.Addr().String(), nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read after the backend reset: %v; want ECONNRESET", err)
		}
	})
	t.Run("client resets", func(t *testing.T) {
		backend := listenLoopback(t)
		got := make(chan error, 1)
		go func() {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 1)
			c.Read(b) // the client's byte
			_, err = c.Read(b)
			got <- err
		}()
		addr, _, _ := startProxy(t, backend.Addr().String(), nil)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		time.Sleep(100 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		if err := <-got; !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("backend read after the client reset: %v; want ECONNRESET", err)
		}
	})
}

// TestDrainTimeoutClosesOpenConnections: after the drain timeout the
// connections still open are closed, and Serve returns.
func TestDrainTimeoutClosesOpenConnections(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	p := testProxy(t, ln, backend.Addr().String())
	p.DrainTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "held")
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("read after the drain timeout: %v; want EOF (closed by the proxy)", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain timeout")
	}
	if a := p.active.Load(); a != 0 {
		t.Errorf("active after Serve = %d; want 0", a)
	}
}

// TestConnEndAfterDrainDoesNotPanic: a connection accepted as the listeners
// closed can start and end after the count had dropped to 0 while exiting
// (it used to close the drained channel twice).
func TestConnEndAfterDrainDoesNotPanic(t *testing.T) {
	p := &Proxy{}
	p.drained = make(chan struct{})
	p.settle = newSettler(time.Hour)
	p.mu.Lock()
	p.exiting = true
	p.closeDrained()
	p.mu.Unlock()
	for range 3 {
		p.connStart()
		p.connEnd()
	}
	select {
	case <-p.drained:
	default:
		t.Error("drained not closed")
	}
}
