package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
)

func testLog(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l)
}

// startProxy serves a fresh loopback listener towards target in the test's
// own namespace and returns the listener's address.
func startProxy(t *testing.T, target string, tune func(*Proxy)) (string, *Proxy, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := testProxy(t, ln, target)
	if tune != nil {
		tune(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- p.Serve(ctx); close(exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ln.Addr().String(), p, done
}

// testProxy is a proxy from ln to target in the test's own namespace.
func testProxy(t *testing.T, ln net.Listener, target string) *Proxy {
	t.Helper()
	tg, err := ns.ParseTarget("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	return &Proxy{
		Listeners:        []Listener{{ln: ln, name: "test", target: tg}},
		Backend:          Static{NewGeneration(ns.Current(), nil, "test namespace")},
		ConnectTimeout:   5 * time.Second,
		ContainerTimeout: 5 * time.Second,
		MaxConns:         64,
		DrainTimeout:     2 * time.Second,
		Log:              testLog(t),
	}
}

// echoServer answers every line with "echo: LINE" until the client half-closes,
// then writes "bye" and closes: the reply after a half-close.
func echoServer(t *testing.T, ln net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
				io.WriteString(c, "bye\n")
			}()
		}
	}()
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestProxyHalfClose(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, p, _ := startProxy(t, backend.Addr().String(), nil)
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello %d\n", i)
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if want := fmt.Sprintf("echo: hello %d\nbye\n", i); err != nil || string(got) != want {
			t.Fatalf("reply after half-close = %q, %v; want %q", got, err, want)
		}
	}
	if n := p.total.Load(); n != 20 {
		t.Errorf("total = %d; want 20", n)
	}
}

func TestProxyColdStartHoldsClient(t *testing.T) {
	// Reserve a port, close it: the backend "starts" on it 300 ms later.
	tmp := listenLoopback(t)
	port := tmp.Addr().String()
	tmp.Close()
	addr, p, _ := startProxy(t, port, nil)
	started := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", port)
		if err != nil {
			t.Error(err)
			close(started)
			return
		}
		t.Cleanup(func() { ln.Close() })
		echoServer(t, ln)
		close(started)
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "early")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo: early\n" {
		t.Fatalf("first reply during a cold start = %q, %v; want %q (no reset)", line, err, "echo: early\n")
	}
	<-started
	if f := p.fail.Load(); f != 0 {
		t.Errorf("failed = %d; want 0", f)
	}
}

func TestProxyConnectTimeoutClosesClient(t *testing.T) {
	tmp := listenLoopback(t)
	port := tmp.Addr().String()
	tmp.Close() // nothing will listen here
	addr, p, _ := startProxy(t, port, func(p *Proxy) { p.ConnectTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read from a client whose backend never came = %d, %v; want 0, EOF (closed, not reset: it sent nothing)", n, err)
	}
	if f := p.fail.Load(); f != 1 {
		t.Errorf("failed = %d; want 1", f)
	}
}

func TestProxyConnectionsMaxQueuesInBacklog(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	const limit = 2
	addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.MaxConns = limit })
	var held []net.Conn
	for i := 0; i < limit; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(c, "hold")
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The third connects (the kernel backlog completes the handshake) but is
	// not served until a slot frees.
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintln(third, "queued")
	r := bufio.NewReader(third)
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("third client served beyond --connections-max")
	}
	if a := p.active.Load(); a != limit {
		t.Errorf("active = %d; want %d", a, limit)
	}
	held[0].Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "echo: queued\n" {
		t.Fatalf("queued client after a slot freed = %q, %v; want %q", line, err, "echo: queued\n")
	}
	held[1].Close()
}

func TestProxyManyConcurrentClients(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.MaxConns = 1000 })
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "c%d\n", i)
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if want := fmt.Sprintf("echo: c%d\nbye\n", i); err != nil || string(got) != want {
				errs <- fmt.Errorf("client %d got %q, %v; want %q", i, got, err, want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.active.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // wait for the proxy's side to finish closing
	}
	if a := p.active.Load(); a != 0 {
		t.Errorf("active after all clients left = %d; want 0", a)
	}
}

func TestProxyIdleExit(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, _, done := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.IdleExit = 200 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "x")
	bufio.NewReader(c).ReadString('\n')
	// While a client is connected the proxy stays.
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a client connected", err)
	case <-time.After(400 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after idle = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not exit after the idle time")
	}
}

func TestStatusLine(t *testing.T) {
	p := &Proxy{}
	p.lastDesc.Store("")
	p.active.Store(2)
	p.total.Store(7)
	if got, want := p.StatusLine(), "waiting for the backend: 2 active, 7 total, 0 failed, 0 refused, 0 B in, 0 B out"; got != want {
		t.Errorf("StatusLine = %q; want %q", got, want)
	}
	p.lastDesc.Store("pg (pid 4)")
	if got := p.StatusLine(); !strings.HasPrefix(got, "serving pg (pid 4): ") {
		t.Errorf("StatusLine = %q; want it to name the backend", got)
	}
}

func TestProxyIdleTimeoutClosesSilentConnections(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	addr, p, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// Busy: a line every 100 ms for 600 ms keeps it open past the timeout.
	for i := 0; i < 6; i++ {
		fmt.Fprintf(c, "tick %d\n", i)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("busy connection closed after %d ticks: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Silent: closed within a few sweeps.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("read data from a connection that should have been closed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent connection closed after %s; want about 300 ms", d)
	}
	if !eventually(func() bool { return p.active.Load() == 0 }) {
		t.Errorf("active after the idle timeout = %d; want 0", p.active.Load())
	}
}

func TestProxyProtocolHeaderReachesBackend(t *testing.T) {
	backend := listenLoopback(t)
	got := make(chan string, 1)
	go func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	addr, _, _ := startProxy(t, backend.Addr().String(), func(p *Proxy) { p.Listeners[0].proxyProto = 1 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr)
	want := fmt.Sprintf("PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n", local.Port, c.RemoteAddr().(*net.TCPAddr).Port)
	select {
	case line := <-got:
		if line != want {
			t.Fatalf("backend read %q; want %q", line, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no header")
	}
}

// TestZeroValueProxy: a Proxy with nothing but its listener serves, in its
// own namespace, with the defaults.
func TestZeroValueProxy(t *testing.T) {
	backend := listenLoopback(t)
	echoServer(t, backend)
	ln := listenLoopback(t)
	tg, err := ns.ParseTarget("tcp", backend.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Listeners: []Listener{{ln: ln, name: "zero", target: tg}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "zero")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "echo: zero\nbye\n" {
		t.Errorf("through a zero-value Proxy: %q, %v; want %q", got, err, "echo: zero\nbye\n")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v; want nil", err)
	}
	if p.MaxConns != DefaultMaxConns || p.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("defaults: MaxConns %d, ConnectTimeout %s; want %d, %s", p.MaxConns, p.ConnectTimeout, DefaultMaxConns, DefaultConnectTimeout)
	}
}

// While a dial waits for a descriptor, accept loops hold back; they go on
// once it has one, and stop waiting when their context ends.
func TestWaitFDs(t *testing.T) {
	var p Proxy
	if !p.waitFDs(context.Background()) {
		t.Fatal("waitFDs with no starved dial: want true at once")
	}
	p.starved.Add(1)
	done := make(chan bool)
	go func() { done <- p.waitFDs(context.Background()) }()
	select {
	case <-done:
		t.Fatal("waitFDs returned while a dial was starved")
	case <-time.After(4 * fdRetry):
	}
	p.starved.Add(-1)
	if !<-done {
		t.Fatal("waitFDs after the starved dial ended: want true")
	}
	p.starved.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.waitFDs(ctx) {
		t.Fatal("waitFDs with an ended context: want false")
	}
}
