package proxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// closedSoon reports whether the server side closed c within a second: a
// read ends with EOF or a reset rather than a timeout.
func closedSoon(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestDrainFDStream(t *testing.T) {
	ln := listenLoopback(t)
	defer ln.Close()
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	fds := dupListeners([]Listener{{ln: ln}})
	if len(fds) != 1 {
		t.Fatalf("dupListeners: %d fds", len(fds))
	}
	// a dup in blocking mode must not hang the drain once the queue is empty
	if err := unix.SetNonblock(fds[0], false); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- drainFD(fds[0]) }()
	select {
	case n := <-done:
		if n != 3 {
			t.Errorf("drainFD = %d; want 3", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drainFD blocked")
	}
	unix.Close(fds[0])
	for i, c := range clients {
		if !closedSoon(c) {
			t.Errorf("client %d still open after the drain", i)
		}
	}
	if n := drainFD(int(must(t, ln).Fd())); n != 0 {
		t.Errorf("drain of an empty queue = %d", n)
	}
}

// must returns a duplicate of ln's descriptor, closed with the test.
func must(t *testing.T, ln net.Listener) interface{ Fd() uintptr } {
	t.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestDrainFDDatagramAndOthers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("one"))
	c.Write([]byte("two"))
	time.Sleep(50 * time.Millisecond)
	fds := dupListeners([]Listener{{pc: pc}})
	if n := drainFD(fds[0]); n != 2 {
		t.Errorf("drainFD of a UDP socket = %d; want 2 datagrams", n)
	}
	unix.Close(fds[0])
	// a connected stream socket (Accept=yes hands those over) is left alone
	ln := listenLoopback(t)
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, _ := conn.(*net.TCPConn).File()
	defer f.Close()
	if n := drainFD(int(f.Fd())); n != 0 {
		t.Errorf("drainFD of a connected socket = %d", n)
	}
}

// TestServeClosesQueuedClientsOnError: a bro-proxy that exits on an error
// (here: the container never appeared within --container-timeout) first
// closes the clients still waiting in the accept queue, since systemd would
// otherwise start it again at once for them.
func TestServeClosesQueuedClientsOnError(t *testing.T) {
	dir := openTestStateDir(t)
	src, err := NewContainer(ContainerConfig{Name: "never", Dir: dir, Timeout: 200 * time.Millisecond, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ln := listenLoopback(t)
	tg, _ := ns.ParseTarget("tcp", "127.0.0.1:1")
	var logs lockedBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	p := &Proxy{
		Listeners: []Listener{{ln: ln, name: "test", target: tg}}, Backend: src,
		ConnectTimeout: time.Second, ContainerTimeout: 200 * time.Millisecond,
		MaxConns: 1, DrainTimeout: time.Second, Log: logrus.NewEntry(log),
	}
	// one client is accepted and waits for the container; with MaxConns 1
	// the others stay queued in the backlog
	var clients []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `container "never" did not start within 200ms`) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	for i, c := range clients {
		if !closedSoon(c) {
			t.Errorf("client %d left open", i)
		}
	}
	// the accept loop may take a second client between the first one's
	// failure and Serve seeing it: 2 or 3 are closed in the queue
	if !regexp.MustCompile(`msg="closed the clients still queued: exiting on an error" clients=[23] `).MatchString(logs.String()) {
		t.Errorf("log:\n%s", logs.String())
	}
	if got := p.fail.Load(); got != 4 {
		t.Errorf("failed = %d; want 4 (each client, timed out or closed in the queue)", got)
	}
}

// lockedBuffer is a log output read while a goroutine may still write: a
// client accepted as Serve stopped is handled after it returned.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeLeavesQueuedClientsOnStop: a clean exit (SIGTERM) leaves queued
// clients to the next activation.
func TestServeLeavesQueuedClientsOnStop(t *testing.T) {
	ln := listenLoopback(t)
	defer ln.Close()
	dup := must(t, ln) // systemd's copy: the socket outlives the proxy's
	ctx, cancel := context.WithCancel(context.Background())
	tg, _ := ns.ParseTarget("tcp", "127.0.0.1:1")
	q := &Proxy{Listeners: []Listener{{ln: ln, name: "q", target: tg}},
		Backend:        Static{NewGeneration(ns.Current(), nil, "test")},
		ConnectTimeout: time.Second, ContainerTimeout: time.Second, MaxConns: 1,
		DrainTimeout: time.Second, Log: testLog(t)}
	done := make(chan error, 1)
	cancel() // stopped before it accepts anything
	go func() { done <- q.Serve(ctx) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if closedSoon(c) {
		t.Error("a client queued after a clean exit was closed")
	}
	if n := drainFD(int(dup.Fd())); n != 1 {
		t.Errorf("queue after a clean exit holds %d; want the client", n)
	}
}

func TestLogLimiter(t *testing.T) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	l := newLogLimiter(200*time.Millisecond, 2)
	e := logrus.NewEntry(log)
	for i := 0; i < 10; i++ {
		l.log("closed", e.WithField("n", i), logrus.WarnLevel, "backend unreachable; closing client")
	}
	l.log("other", e, logrus.InfoLevel, "another kind")
	time.Sleep(400 * time.Millisecond)
	l.log("closed", e.WithField("n", 10), logrus.WarnLevel, "backend unreachable; closing client")
	want := `level=warning msg="backend unreachable; closing client" n=0
level=warning msg="backend unreachable; closing client" n=1
level=info msg="another kind"
level=warning msg="backend unreachable; closing client" n=9 suppressed=8 window=200ms
level=warning msg="backend unreachable; closing client" n=10
`
	if out.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", out.String(), want)
	}
}
