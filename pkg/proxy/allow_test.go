package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
)

// countingBackend counts Get: a refused client must never ask for the
// backend (which, following a container, would start it).
type countingBackend struct {
	Backend
	gets atomic.Int64
}

func (c *countingBackend) Get(ctx context.Context) (*Generation, error) {
	c.gets.Add(1)
	return c.Backend.Get(ctx)
}

// testGuard is a Guard of value for a proxy whose owner is us (ownerIsMe)
// or some other uid: then a list that does not name us refuses us.
func testGuard(t *testing.T, value string, ownerIsMe bool) *allow.Guard {
	t.Helper()
	l, err := allow.Parse(value)
	if err != nil {
		t.Fatal(err)
	}
	owner := uint32(os.Getuid())
	if !ownerIsMe {
		owner = 4242424
	}
	m, err := allow.Resolve(l, owner, allow.Files{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := allow.NewGuard(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestAllowStream(t *testing.T) {
	me := os.Getuid()
	for _, tc := range []struct {
		name, value string
		ownerIsMe   bool
		admitted    bool
	}{
		{"owner", "uid:5", true, true},
		{"named", fmt.Sprintf("uid:%d", me), false, true},
		{"address", "127.0.0.1", false, true},
		{"refused", "uid:5,10.0.0.0/8", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := listenLoopback(t)
			echoServer(t, backend)
			cb := &countingBackend{}
			addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) {
				cb.Backend = p.Backend
				p.Backend = cb
				p.Allow = testGuard(t, tc.value, tc.ownerIsMe)
			})
			c, err := net.Dial("tcp", addr)
			switch {
			case err == nil:
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "hi\n")
				line, rerr := bufio.NewReader(c).ReadString('\n')
				if tc.admitted {
					if rerr != nil || line != "echo: hi\n" {
						t.Errorf("admitted client read %q, %v; want the echo", line, rerr)
					}
					return
				}
				if !errors.Is(rerr, syscall.ECONNRESET) && !errors.Is(rerr, io.EOF) {
					t.Errorf("refused client read %q, %v; want a reset", line, rerr)
				}
			case tc.admitted || !errors.Is(err, syscall.ECONNRESET): // reset before connect returned: refused
				t.Fatal(err)
			}
			if !eventually(func() bool { return p.refused.Load() == 1 }) {
				t.Errorf("refused = %d; want 1", p.refused.Load())
			}
			if n := cb.gets.Load(); n != 0 {
				t.Errorf("backend asked %d times for a refused client; want 0", n)
			}
			if n := p.total.Load(); n != 0 {
				t.Errorf("total = %d; want 0 (a refused client is no connection)", n)
			}
		})
	}
}

func TestAllowStreamFlood(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) {
		p.Allow = testGuard(t, "uid:5", false)
	})
	for range 200 {
		// the reset may come before connect returns
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
	}
	if !eventually(func() bool { return p.refused.Load() == 200 }) {
		t.Errorf("refused = %d; want 200", p.refused.Load())
	}
	if n := p.total.Load(); n != 0 {
		t.Errorf("total = %d; want 0", n)
	}
}

func TestAllowUDP(t *testing.T) {
	backend, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	udpEcho(t, backend)
	for _, tc := range []struct {
		name, value string
		admitted    bool
	}{
		{"admitted", fmt.Sprintf("uid:%d", os.Getuid()), true},
		{"refused", "uid:5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb := &countingBackend{}
			addr, p := startUDPProxy(t, backend.LocalAddr().String(), func(p *Proxy) {
				cb.Backend = p.Backend
				p.Backend = cb
				p.Allow = testGuard(t, tc.value, false)
				if !tc.admitted {
					// the refused source is remembered as long (a live
					// flow would hold its socket as long past the test)
					p.UDPIdle = 10 * time.Second
				}
			})
			c, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 64)
			for i := range 3 {
				fmt.Fprintf(c, "ping %d", i)
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, err := c.Read(buf)
				if tc.admitted && (err != nil || string(buf[:n]) != fmt.Sprintf("echo: ping %d", i)) {
					t.Errorf("admitted: reply %q, %v; want the echo", buf[:n], err)
				}
				if !tc.admitted && err == nil {
					t.Errorf("refused: reply %q; want none", buf[:n])
				}
			}
			if tc.admitted {
				return
			}
			if n := cb.gets.Load(); n != 0 {
				t.Errorf("backend asked %d times for a refused source; want 0", n)
			}
			// one lookup and one count: the source is remembered as refused
			if n := p.refused.Load(); n != 1 {
				t.Errorf("refused = %d; want 1", n)
			}
		})
	}
}

// benchConnect connects through a proxy (with guard as its Allow, or none)
// to an echo backend, sends a byte, reads it back and closes: one whole
// short connection per op, the cost an allow list adds to.
func benchConnect(b *testing.B, guard func() *allow.Guard) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tg, err := ns.ParseTarget("tcp", backend.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := &Proxy{Listeners: []Listener{{ln: ln, name: "bench", target: tg}},
		Backend: Static{NewGeneration(ns.Current(), nil, "bench")}, Log: logrus.NewEntry(l)}
	if guard != nil {
		p.Allow = guard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	buf := make([]byte, 1)
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkConnect and BenchmarkConnectAllow: a short connection through
// the proxy without and with an allow list that admits the benchmark's
// user by its uid (the lookup runs, the match succeeds). docs/bench.md.
func BenchmarkConnect(b *testing.B) { benchConnect(b, nil) }

func BenchmarkConnectAllow(b *testing.B) {
	benchConnect(b, func() *allow.Guard {
		l, err := allow.Parse(fmt.Sprintf("uid:%d", os.Getuid()))
		if err != nil {
			b.Fatal(err)
		}
		m, err := allow.Resolve(l, 4242424, allow.Files{})
		if err != nil {
			b.Fatal(err)
		}
		g, err := allow.NewGuard(m)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(g.Close)
		return g
	})
}
