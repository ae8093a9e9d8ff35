package allow

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func openDiag(t testing.TB) *Diag {
	t.Helper()
	d, err := OpenDiag(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// tcpPair is a connected loopback TCP pair on network ("tcp4", "tcp6").
func tcpPair(t testing.TB, network, addr string) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func ap(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic(fmt.Sprintf("address %T", a))
}

func TestOwnerTCP(t *testing.T) {
	me := uint32(os.Getuid())
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "tcp4", "127.0.0.1:0"},
		{"ipv6", "tcp6", "[::1]:0"},
		{"dual-stack listener, ipv4 client", "tcp", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openDiag(t)
			c, s := tcpPair(t, tc.network, tc.addr)
			// the client's socket: its own end is the server's peer
			uid, err := d.Owner(syscall.IPPROTO_TCP, ap(s.RemoteAddr()), ap(s.LocalAddr()))
			if err != nil || uid != me {
				t.Errorf("Owner(client) = %d, %v; want %d, nil", uid, err, me)
			}
			_ = c
		})
	}
}

func TestOwnerTCPMapped(t *testing.T) {
	// a [::] listener sees an IPv4 client as ::ffff:127.0.0.1
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatalf("a dual-stack [::] listener: %v (the machine needs IPv6 on loopback, as CI's has)", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !ap(s.RemoteAddr()).Addr().Is4In6() {
		t.Fatalf("peer %s is not IPv4-mapped", s.RemoteAddr())
	}
	uid, err := openDiag(t).Owner(syscall.IPPROTO_TCP, ap(s.RemoteAddr()), ap(s.LocalAddr()))
	if want := uint32(os.Getuid()); err != nil || uid != want {
		t.Errorf("Owner(mapped client) = %d, %v; want %d, nil", uid, err, want)
	}
}

func TestOwnerTCPGone(t *testing.T) {
	d := openDiag(t)
	t.Run("closed: time-wait or orphan", func(t *testing.T) {
		c, s := tcpPair(t, "tcp4", "127.0.0.1:0")
		c.Close()
		_, err := d.Owner(syscall.IPPROTO_TCP, ap(s.RemoteAddr()), ap(s.LocalAddr()))
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNoSocket) {
			t.Errorf("Owner(closed client) = %v; want ErrClosed or ErrNoSocket", err)
		}
	})
	t.Run("reset: no socket", func(t *testing.T) {
		c, s := tcpPair(t, "tcp4", "127.0.0.1:0")
		c.SetLinger(0)
		c.Close()
		_, err := d.Owner(syscall.IPPROTO_TCP, ap(s.RemoteAddr()), ap(s.LocalAddr()))
		if !errors.Is(err, ErrNoSocket) {
			t.Errorf("Owner(reset client) = %v; want ErrNoSocket", err)
		}
	})
	t.Run("no such 4-tuple", func(t *testing.T) {
		_, err := d.Owner(syscall.IPPROTO_TCP, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
		if !errors.Is(err, ErrNoSocket) {
			t.Errorf("Owner(nothing) = %v; want ErrNoSocket", err)
		}
	})
}

func TestOwnerUDP(t *testing.T) {
	me := uint32(os.Getuid())
	d := openDiag(t)
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		name string
		dial func() (*net.UDPConn, error)
	}{
		{"connected client", func() (*net.UDPConn, error) { return net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr)) }},
		{"unconnected client", func() (*net.UDPConn, error) { return net.ListenUDP("udp4", &net.UDPAddr{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.RemoteAddr() != nil {
				_, err = c.Write([]byte("x"))
			} else {
				_, err = c.WriteTo([]byte("x"), srv.LocalAddr())
			}
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			uid, err := d.Owner(syscall.IPPROTO_UDP, from, ap(srv.LocalAddr()))
			if err != nil || uid != me {
				t.Errorf("Owner(%s) = %d, %v; want %d, nil", from, uid, err, me)
			}
			c.Close()
			if _, err := d.Owner(syscall.IPPROTO_UDP, from, ap(srv.LocalAddr())); !errors.Is(err, ErrNoSocket) {
				t.Errorf("Owner(closed %s) = %v; want ErrNoSocket", from, err)
			}
		})
	}
}

// guardFor is a Guard whose owner is not this process's user unless
// ownerIsMe: a list that does not name us refuses us.
func guardFor(t *testing.T, value string, ownerIsMe bool) *Guard {
	t.Helper()
	l, err := Parse(value)
	if err != nil {
		t.Fatal(err)
	}
	owner := uint32(os.Getuid())
	if !ownerIsMe {
		owner = 4242424
	}
	m, err := Resolve(l, owner, testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	return &Guard{m: m, diag: openDiag(t)}
}

func rawFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func TestGuardStream(t *testing.T) {
	me := os.Getuid()
	for _, tc := range []struct {
		name, value string
		ownerIsMe   bool
		allowed     bool
		by, reason  string
	}{
		{name: "owner always", value: "uid:5", ownerIsMe: true, allowed: true, by: "owner"},
		{name: "by uid", value: fmt.Sprintf("uid:%d", me), allowed: true, by: fmt.Sprintf("uid:%d", me)},
		{name: "by address", value: "127.0.0.0/8", allowed: true, by: "127.0.0.0/8"},
		{name: "refused", value: "uid:5,10.0.0.0/8",
			reason: fmt.Sprintf("uid %d is not allowed by bro.allow=uid:5,10.0.0.0/8", me)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := guardFor(t, tc.value, tc.ownerIsMe)
			_, s := tcpPair(t, "tcp4", "127.0.0.1:0")
			v := g.Stream(rawFD(t, s))
			if v.Allowed != tc.allowed || v.By != tc.by || v.Reason != tc.reason || v.Err != nil {
				t.Errorf("Stream = %+v; want allowed %v by %q reason %q", v, tc.allowed, tc.by, tc.reason)
			}
		})
	}
	t.Run("unix: SO_PEERCRED", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if v := guardFor(t, "uid:5", false).Stream(rawFD(t, s.(*net.UnixConn))); v.Allowed || v.UID != int64(me) {
			t.Errorf("Stream(unix, not listed) = %+v; want refused uid %d", v, me)
		}
		if v := guardFor(t, fmt.Sprintf("uid:%d", me), false).Stream(rawFD(t, s.(*net.UnixConn))); !v.Allowed {
			t.Errorf("Stream(unix, listed) = %+v; want allowed", v)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		g := guardFor(t, "uid:5", false)
		c, s := tcpPair(t, "tcp4", "127.0.0.1:0")
		c.SetLinger(0)
		c.Close()
		time.Sleep(10 * time.Millisecond)
		v := g.Stream(rawFD(t, s))
		if v.Allowed || !v.Gone {
			t.Errorf("Stream(gone) = %+v; want refused, gone", v)
		}
	})
}

func TestGuardDatagram(t *testing.T) {
	me := os.Getuid()
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := ap(c.LocalAddr())
	wild := netip.AddrPortFrom(netip.IPv4Unspecified(), ap(srv.LocalAddr()).Port())
	for _, tc := range []struct {
		name, value string
		listener    netip.AddrPort
		allowed     bool
	}{
		{"refused", "uid:5", ap(srv.LocalAddr()), false},
		{"allowed", fmt.Sprintf("uid:%d", me), ap(srv.LocalAddr()), true},
		{"wildcard listener", fmt.Sprintf("uid:%d", me), wild, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := guardFor(t, tc.value, false).Datagram(tc.listener, client)
			if v.Allowed != tc.allowed || v.UID != int64(me) {
				t.Errorf("Datagram = %+v; want allowed %v uid %d", v, tc.allowed, me)
			}
		})
	}
	t.Run("remote address", func(t *testing.T) {
		v := guardFor(t, "uid:5", false).Datagram(ap(srv.LocalAddr()), netip.MustParseAddrPort("192.0.2.9:4000"))
		if want := "address 192.0.2.9 is not allowed by bro.allow=uid:5"; v.Allowed || v.Reason != want {
			t.Errorf("Datagram(remote) = %+v; want refused: %s", v, want)
		}
	})
}

// BenchmarkOwnerTCP is the cost the allow list adds to each TCP connection
// of this host: one sock_diag request and its reply (docs/bench.md).
func BenchmarkOwnerTCP(b *testing.B) {
	d := openDiag(b)
	_, s := tcpPair(b, "tcp4", "127.0.0.1:0")
	client, server := ap(s.RemoteAddr()), ap(s.LocalAddr())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Owner(syscall.IPPROTO_TCP, client, server); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardStream is the whole check of an accepted TCP client:
// getpeername, getsockname, the lookup and the match.
func BenchmarkGuardStream(b *testing.B) {
	l, _ := Parse("uid:5")
	m, err := Resolve(l, uint32(os.Getuid()), Files{})
	if err != nil {
		b.Fatal(err)
	}
	g := &Guard{m: m, diag: openDiag(b)}
	_, s := tcpPair(b, "tcp4", "127.0.0.1:0")
	rc, _ := s.SyscallConn()
	var fd int
	rc.Control(func(f uintptr) { fd = int(f) })
	b.ReportAllocs()
	for b.Loop() {
		if v := g.Stream(fd); !v.Allowed {
			b.Fatal(v)
		}
	}
}
