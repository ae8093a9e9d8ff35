package handoff

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

func TestNotifSizes(t *testing.T) {
	s, err := notifSizes()
	if err != nil {
		t.Fatal(err)
	}
	got := [3]uintptr{uintptr(s.Notif), uintptr(s.NotifResp), uintptr(s.Data)}
	want := [3]uintptr{unsafe.Sizeof(seccompNotif{}), unsafe.Sizeof(seccompNotifResp{}), unsafe.Sizeof(seccompData{})}
	if got != want {
		t.Errorf("kernel sizes of seccomp_notif, seccomp_notif_resp, seccomp_data: got %v; want ours %v", got, want)
	}
	if n := unsafe.Sizeof(seccompNotifAddfd{}); n != 24 { // SECCOMP_NOTIFY_ADDFD_SIZE_VER0
		t.Errorf("seccomp_notif_addfd: got %d bytes; want 24", n)
	}
}

// hostSocket is a real socket of the test, as systemd's would be: a
// listening TCP or a bound UDP socket of 127.0.0.1, with its descriptor
// (still owned by the listener), port and inode.
type hostSocket struct {
	network, addr string
	fd, port      int
	ino           uint64
}

func listenHost(t *testing.T, network string) hostSocket {
	t.Helper()
	var sc syscall.Conn
	h := hostSocket{network: network}
	if network == "udp4" {
		c, err := net.ListenPacket(network, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc, h.addr = c.(*net.UDPConn), c.LocalAddr().String()
	} else {
		ln, err := net.Listen(network, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		sc, h.addr = ln.(*net.TCPListener), ln.Addr().String()
	}
	h.port = int(netip.MustParseAddrPort(h.addr).Port())
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { h.fd = int(fd) })
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		t.Fatal(err)
	}
	h.ino = st.Ino
	return h
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) { w.t.Logf("%s", b); return len(b), nil }

// serve runs a Handler on the child's listener and returns a function that
// waits for Serve to end, which it must by itself once the child has exited.
func serve(t *testing.T, table *Table, c *child) (wait func()) {
	t.Helper()
	return serveWith(t, &Handler{Table: table}, c)
}

// serveWith is serve with a Handler of the test's; its Log is set here.
func serveWith(t *testing.T, h *Handler, c *child) (wait func()) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(testLog{t})
	l.SetLevel(logrus.DebugLevel)
	h.Log = logrus.NewEntry(l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() {
		defer close(done)
		serveErr = h.Serve(ctx, c.listener)
	}()
	wait = func() {
		t.Helper()
		select {
		case <-done:
			if serveErr != nil {
				t.Errorf("Serve: got %v; want nil once the child has exited", serveErr)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve still runs 5 s after the child exited")
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("Serve still runs 5 s after its context was cancelled")
		}
	})
	return wait
}

// want is what one bind of the child should find.
type want struct {
	host    bool          // the descriptor is now the host socket
	errno   syscall.Errno // of bind()
	cloexec bool          // FD_CLOEXEC of a descriptor that became the host socket
}

func TestHandoff(t *testing.T) {
	tests := []struct {
		name     string
		host     string // network of the host socket: tcp4 (the default) or udp4
		ownNetns bool
		notify   []string
		binds    func(h hostSocket, other int) []bindSpec
		want     []want
		backlog  func(before uint32) uint32 // the host socket's backlog after the child's listen(fd, 5); nil for UDP
		accept   bool                       // a client of the host socket reaches the child through binds[0]
	}{
		{
			// As PostgreSQL with listen_addresses='*' in a rootless
			// container with Network=none: the first bind gets the host
			// socket; the second, of the same port, proceeds and binds a
			// socket of the container's own namespace; the other port is
			// untouched.
			name: "own netns", ownNetns: true, notify: []string{"bind", "listen"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "0.0.0.0", Port: h.port, Cloexec: true}, {Addr: "::", Port: h.port, Cloexec: true}, {Addr: "127.0.0.1", Port: other, Cloexec: true}}
			},
			want:    []want{{host: true, cloexec: true}, {}, {}},
			backlog: func(before uint32) uint32 { return before },
			accept:  true,
		},
		{
			// In the host's own namespace the second bind proceeds too, and
			// the kernel refuses it: [::]:PORT (dual stack) collides with
			// the host socket's 127.0.0.1:PORT.
			name: "shared netns", notify: []string{"bind", "listen"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "127.0.0.1", Port: h.port, Cloexec: false}, {Addr: "::", Port: h.port, Cloexec: true}, {Addr: "127.0.0.1", Port: other, Cloexec: true}}
			},
			want:    []want{{host: true, cloexec: false}, {errno: unix.EADDRINUSE}, {}},
			backlog: func(before uint32) uint32 { return before },
			accept:  true,
		},
		{
			// Without the listen rule the server's listen(fd, 5) replaces
			// the host socket's backlog: what the listen rule is for.
			name: "listen not notified", ownNetns: true, notify: []string{"bind"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "::1", Port: h.port, Cloexec: true}}
			},
			want:    []want{{host: true, cloexec: true}},
			backlog: func(uint32) uint32 { return 5 },
			accept:  true,
		},
		{
			// A container whose filter does not notify bind gets nothing:
			// its bind of the port makes its own socket.
			name: "bind not notified", ownNetns: true, notify: []string{"listen"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "0.0.0.0", Port: h.port, Cloexec: true}}
			},
			want:    []want{{}},
			backlog: func(before uint32) uint32 { return before },
		},
		{
			// The port matches, the type does not: a UDP bind of the TCP
			// host socket's port proceeds, in the host's namespace too.
			name: "udp bind of a tcp port", notify: []string{"bind", "listen"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "127.0.0.1", Port: h.port, Cloexec: true, UDP: true}}
			},
			want:    []want{{}},
			backlog: func(before uint32) uint32 { return before },
		},
		{
			// A UDP host socket goes to the first UDP bind of its port
			// and the child answers datagrams sent to the host socket.
			name: "udp", host: "udp4", ownNetns: true, notify: []string{"bind", "listen"},
			binds: func(h hostSocket, other int) []bindSpec {
				return []bindSpec{{Addr: "0.0.0.0", Port: h.port, Cloexec: true, UDP: true}, {Addr: "0.0.0.0", Port: h.port, UDP: true}}
			},
			want:   []want{{host: true, cloexec: true}, {}},
			accept: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.host == "" {
				tt.host = "tcp4"
			}
			h := listenHost(t, tt.host)
			table, err := NewTable(h.fd)
			if err != nil {
				t.Fatal(err)
			}
			defer table.Close()
			var before uint32
			if tt.backlog != nil {
				if before = listenBacklog(t, h.ino); before == 5 {
					t.Fatalf("the host socket's backlog is 5 already; the test needs another")
				}
			}
			cfg := childConfig{
				OwnNetns: tt.ownNetns, Notify: tt.notify,
				Binds: tt.binds(h, freePort(t)), Backlog: 5, Accept: -1,
			}
			if tt.accept {
				cfg.Accept = 0
			}
			c, err := startChild(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			wait := serve(t, table, c)
			var rep childReport
			c.read(&rep)
			if rep.Err != "" {
				t.Fatalf("child: %s", rep.Err)
			}
			if rep.Tid == rep.Pid {
				t.Errorf("the child bound on its leader thread %d; want another thread", rep.Tid)
			}
			for i, w := range tt.want {
				b, r := cfg.Binds[i], rep.Binds[i]
				if r.Errno != w.errno {
					t.Errorf("bind %d (%s:%d): got errno %v; want %v", i, b.Addr, b.Port, r.Errno, w.errno)
					continue
				}
				if r.Errno != 0 {
					continue
				}
				if got := r.Ino == h.ino; got != w.host {
					t.Errorf("bind %d (%s:%d): host socket (inode %d): got %v (inode %d); want %v", i, b.Addr, b.Port, h.ino, got, r.Ino, w.host)
				}
				if r.Port != b.Port {
					t.Errorf("bind %d (%s:%d): getsockname port: got %d; want %d", i, b.Addr, b.Port, r.Port, b.Port)
				}
				if r.ListenErrno != 0 {
					t.Errorf("bind %d (%s:%d): listen: got %v; want success", i, b.Addr, b.Port, r.ListenErrno)
				}
				if w.host && r.Cloexec != w.cloexec {
					t.Errorf("bind %d (%s:%d): FD_CLOEXEC: got %v; want %v, as the child created it", i, b.Addr, b.Port, r.Cloexec, w.cloexec)
				}
			}
			if tt.backlog != nil {
				if got, want := listenBacklog(t, h.ino), tt.backlog(before); got != want {
					t.Errorf("host socket's backlog after the child's listen(fd, 5): got %d; want %d (was %d)", got, want, before)
				}
			}
			if tt.accept {
				checkServed(t, h, c)
			}
			c.finish()
			wait()
		})
	}
}

// checkServed connects to the host socket and expects the child to accept,
// see the client's own address and echo.
func checkServed(t *testing.T, h hostSocket, c *child) {
	t.Helper()
	conn, err := net.DialTimeout(h.network, h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read the echo from %s %s: %v", h.network, h.addr, err)
	}
	if line != "echo ping\n" {
		t.Errorf("echo: got %q; want %q", line, "echo ping\n")
	}
	var acc acceptReport
	c.read(&acc)
	if acc.Err != "" {
		t.Fatalf("child: %s", acc.Err)
	}
	if acc.Peer != conn.LocalAddr().String() {
		t.Errorf("peer the child accepted: got %s; want the client's own %s", acc.Peer, conn.LocalAddr())
	}
}

// TestAcceptGate: while Ready says no, the server's bind() gets a
// placeholder and polls on it, and the client stays queued in the host
// socket; once Ready says yes and Wake has run, the server's accept() takes
// that client from the host socket, with its own address.
func TestAcceptGate(t *testing.T) {
	h := listenHost(t, "tcp4")
	table, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	var ready atomic.Bool
	c, err := startChild(t, childConfig{OwnNetns: true, Notify: []string{"bind", "listen", "accept4"},
		Binds: []bindSpec{{Addr: "0.0.0.0", Port: h.port, Cloexec: true}}, Backlog: 5, Accept: 0, Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	wait := serveWith(t, &Handler{Table: table, Ready: ready.Load}, c)
	var rep childReport
	c.read(&rep)
	if rep.Err != "" || len(rep.Binds) != 1 || rep.Binds[0].Errno != 0 || rep.Binds[0].ListenErrno != 0 {
		t.Fatalf("child: %+v; want its bind and listen to succeed", rep)
	}
	if rep.Binds[0].Ino == h.ino {
		t.Fatalf("the child got the host socket before it was ready; want a placeholder")
	}
	if rep.Binds[0].Port == h.port {
		t.Errorf("getsockname of the placeholder: port %d, the host socket's; want an ephemeral one", h.port)
	}
	conn, err := net.DialTimeout("tcp4", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(200 * time.Millisecond) // the child polls on its placeholder meanwhile
	ready.Store(true)
	if err := table.Wake(); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("echo: got %q, %v; want %q", line, err, "echo ping\n")
	}
	var acc acceptReport
	c.read(&acc)
	if acc.Err != "" {
		t.Fatalf("child: %s", acc.Err)
	}
	if acc.Peer != conn.LocalAddr().String() {
		t.Errorf("peer the child accepted: got %s; want the client's own %s", acc.Peer, conn.LocalAddr())
	}
	if table.pending() {
		t.Errorf("a placeholder is still outstanding after the swap")
	}
	c.finish()
	wait()
}

// TestHandoffHolder runs three containers, one after another, on one Table:
// the second binds while the first still holds the host socket and gets its
// own socket; once the first has exited the third gets the host socket.
func TestHandoffHolder(t *testing.T) {
	h := listenHost(t, "tcp4")
	table, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	cfg := childConfig{OwnNetns: true, Notify: []string{"bind", "listen"}, Binds: []bindSpec{{Addr: "0.0.0.0", Port: h.port, Cloexec: true}}, Backlog: 5, Accept: -1}
	run := func(name string) (*child, func(), bindResult) {
		t.Helper()
		c, err := startChild(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		wait := serve(t, table, c)
		var rep childReport
		c.read(&rep)
		if rep.Err != "" || len(rep.Binds) != 1 || rep.Binds[0].Errno != 0 {
			t.Fatalf("%s: got %+v; want one successful bind", name, rep)
		}
		return c, wait, rep.Binds[0]
	}
	first, waitFirst, r := run("first")
	if r.Ino != h.ino {
		t.Errorf("first: got inode %d; want the host socket's %d", r.Ino, h.ino)
	}
	second, waitSecond, r := run("second")
	if r.Ino == h.ino {
		t.Errorf("second, while the first holds it: got the host socket; want its own")
	}
	first.finish()
	waitFirst()
	third, waitThird, r := run("third")
	if r.Ino != h.ino {
		t.Errorf("third, after the first exited: got inode %d; want the host socket's %d", r.Ino, h.ino)
	}
	second.finish()
	third.finish()
	waitSecond()
	waitThird()
}

func TestNewTable(t *testing.T) {
	h := listenHost(t, "tcp4")
	tab, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	s := tab.Sockets()
	if len(s) != 1 || s[0].Port != uint16(h.port) || s[0].Type != unix.SOCK_STREAM || s[0].Family != unix.AF_INET {
		t.Errorf("got %+v; want one AF_INET stream socket of port %d", s, h.port)
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	unbound, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(unbound)
	dup, err := unix.Dup(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	tests := []struct {
		name string
		fds  []int
		want string
	}{
		{"unix", []int{fds[0]}, errPrefix(fds[0]) + "family 1, want AF_INET or AF_INET6"},
		{"unbound", []int{unbound}, errPrefix(unbound) + "not bound to a port"},
		{"twice", []int{h.fd, dup}, "host sockets " + itoa(h.fd) + " and " + itoa(dup) + ": both stream port " + itoa(h.port)},
		{"closed", []int{1 << 20}, errPrefix(1<<20) + "bad file descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(tt.fds...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v; want %s", err, tt.want)
			}
		})
	}
}

func errPrefix(fd int) string { return "host socket " + itoa(fd) + ": " }

func itoa(i int) string { return strconv.Itoa(i) }

// TestServeCancel ends Serve while the child runs: Serve returns the
// context's error and closes the listener, and with no listener left the
// child's notified bind fails with ENOSYS, as it does in a container whose
// agent died.
func TestServeCancel(t *testing.T) {
	h := listenHost(t, "tcp4")
	table, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	c, err := startChild(t, childConfig{Notify: []string{"bind", "listen"}, Binds: []bindSpec{{Addr: "127.0.0.1", Port: h.port}}, Accept: -1, WaitGo: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Handler{Table: table}).Serve(ctx, c.listener) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve after cancel: got %v; want %v", err, context.Canceled)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still runs 5 s after its context was cancelled")
	}
	if _, err := c.conn.Write([]byte("go")); err != nil {
		t.Fatal(err)
	}
	var rep childReport
	c.read(&rep)
	if len(rep.Binds) != 1 || rep.Binds[0].Errno != unix.ENOSYS {
		t.Errorf("bind with the listener closed: got %+v; want errno %v", rep, unix.ENOSYS)
	}
	c.finish()
}
