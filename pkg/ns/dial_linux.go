package ns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/brothaman/brothaman-go/internal/rawsys"
	"golang.org/x/sys/unix"
)

// Target is a resolved address to dial inside a namespace.
type Target struct {
	Network string         // "tcp", "udp" or "unix"
	Addr    string         // "127.0.0.1:5432", "[::1]:53" or a socket path
	ap      netip.AddrPort // tcp, udp
	domain  int
	sotype  int
}

// ParseTarget accepts HOST:PORT for tcp and udp, with HOST an IP literal or
// "localhost" (the target is dialled inside the container, where the host's
// resolver means nothing), and an absolute path for unix.
func ParseTarget(network, addr string) (Target, error) {
	t := Target{Network: network, Addr: addr}
	switch network {
	case "unix":
		if len(addr) == 0 || addr[0] != '/' {
			return t, fmt.Errorf("target %q: want an absolute socket path", addr)
		}
		if len(addr) >= 108 {
			return t, fmt.Errorf("target %q: socket path longer than 107 bytes", addr)
		}
		t.domain, t.sotype = unix.AF_UNIX, unix.SOCK_STREAM
		return t, nil
	case "tcp", "udp":
	default:
		return t, fmt.Errorf("target network %q: want tcp, udp or unix", network)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return t, fmt.Errorf("target %q: want HOST:PORT (IPv6 in brackets)", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return t, fmt.Errorf("target %q: host %q is not an IP address or localhost", addr, host)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return t, fmt.Errorf("target %q: port %q is not in 1-65535", addr, port)
	}
	ap := netip.AddrPortFrom(ip, uint16(pn))
	t.sotype = unix.SOCK_STREAM
	if network == "udp" {
		t.sotype = unix.SOCK_DGRAM
	}
	ap = netip.AddrPortFrom(ip.Unmap(), ap.Port())
	t.ap, t.domain = ap, unix.AF_INET6
	if ap.Addr().Is4() {
		t.domain = unix.AF_INET
	}
	t.Addr = ap.String()
	return t, nil
}

// sockaddr builds a new address on every call: unix.Connect writes into the
// Sockaddr it is given, so one must never be shared between dials.
func (t Target) sockaddr() unix.Sockaddr {
	switch t.domain {
	case unix.AF_UNIX:
		return &unix.SockaddrUnix{Name: t.Addr}
	case unix.AF_INET:
		return &unix.SockaddrInet4{Port: int(t.ap.Port()), Addr: t.ap.Addr().As4()}
	case unix.AF_INET6:
		return &unix.SockaddrInet6{Port: int(t.ap.Port()), Addr: t.ap.Addr().As16()}
	}
	return nil
}

func (t Target) String() string { return t.Network + ":" + t.Addr }

// Domain is the socket domain of the target: AF_INET, AF_INET6 or AF_UNIX.
func (t Target) Domain() int { return t.domain }

// aLongTimeAgo is a deadline that has passed, to wake a blocked connect.
var aLongTimeAgo = time.Unix(1, 0)

// Dial creates a socket with s and connects it to t, waiting in the Go poller
// (no thread is blocked) until the connection completes, fails, or ctx ends.
// The error wraps the errno, so errors.Is(err, unix.ECONNREFUSED) tells a
// backend that is not listening yet.
func Dial(ctx context.Context, s Sockets, t Target) (net.Conn, error) {
	sa := t.sockaddr()
	if sa == nil {
		return nil, errors.New("dial: target not parsed with ParseTarget")
	}
	// context.AfterFunc runs late for a context that is already done: an
	// immediate loopback connect could win the race. Never dial then.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	if t.domain == unix.AF_UNIX {
		// A unix path is resolved where the sockets were entered (a
		// container's filesystem, with EnterMount); connect is immediate.
		fd, err := s.ConnectUnix(t.Addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", t, err)
		}
		f := os.NewFile(uintptr(fd), t.String())
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", t, err)
		}
		return c, nil
	}
	fd, err := s.Socket(t.domain, t.sotype|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	f := os.NewFile(uintptr(fd), t.String())
	defer f.Close()
	if err := connect(ctx, f, sa, false); err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	return c, nil
}

// DialFD is Dial for a caller that moves the bytes itself: it returns the
// connected socket's descriptor, nonblocking and close-on-exec, registered
// with no poller; the caller owns it. A connect that completes at once (a
// unix socket, often loopback TCP) costs two system calls; one that is in
// progress waits in the Go poller like Dial.
func DialFD(ctx context.Context, s Sockets, t Target) (int, error) {
	sa := t.sockaddr()
	if sa == nil {
		return -1, errors.New("dial: target not parsed with ParseTarget")
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("dial %s: %w", t, err)
	}
	if t.domain == unix.AF_UNIX {
		fd, err := s.ConnectUnix(t.Addr)
		if err != nil {
			return -1, fmt.Errorf("dial %s: %w", t, err)
		}
		return fd, nil
	}
	fd, err := s.Socket(t.domain, t.sotype|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("dial %s: %w", t, err)
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return fd, nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
	default:
		unix.Close(fd)
		return -1, fmt.Errorf("dial %s: %w", t, err)
	}
	f := os.NewFile(uintptr(fd), t.String())
	defer f.Close()
	if err := connect(ctx, f, sa, true); err != nil {
		return -1, fmt.Errorf("dial %s: %w", t, err)
	}
	// out of the poller: a duplicate, and the original closed with f
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("dial %s: %w", t, err)
	}
	d, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { d, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		derr = err
	}
	if derr != nil {
		return -1, fmt.Errorf("dial %s: %w", t, derr)
	}
	return d, nil
}

// connect connects f to sa, or with started, waits for the connect already
// started on it to complete.
func connect(ctx context.Context, f *os.File, sa unix.Sockaddr, started bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	err = rc.Write(func(fd uintptr) bool {
		if !started {
			started = true
			switch err := unix.Connect(int(fd), sa); err {
			case nil:
				return true
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				return false // wait for writability
			default:
				cerr = err
				return true
			}
		}
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		if v != 0 {
			cerr = unix.Errno(v)
			return true
		}
		if _, err := unix.Getpeername(int(fd)); errors.Is(err, unix.ENOTCONN) {
			return false // woken early; still connecting
		}
		return true
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return cerr
}

// DialNow is DialFD for a backend known to listen, without waiting: it
// makes the socket and connects it, and returns the descriptor only if the
// connection is established by the time connect returns or just after (a
// loopback connect is EINPROGRESS, but the handshake is done at once). Any
// other outcome (refused, still in progress, a unix socket with a full
// queue) closes the socket and returns false: the caller then dials the
// patient way. No poller, no goroutine: two or three system calls.
func DialNow(s Sockets, t Target) (int, bool) {
	sa := t.sockaddr()
	if sa == nil {
		return -1, false
	}
	if t.domain == unix.AF_UNIX {
		fd, err := s.ConnectUnix(t.Addr)
		return fd, err == nil
	}
	fd, err := s.Socket(t.domain, t.sotype|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, false
	}
	// raw system calls (internal/rawsys): this runs on the accept loop,
	// once per connection
	switch err := rawsys.Connect(fd, sa); err {
	case nil:
		return fd, true
	case unix.EINPROGRESS:
		if v, err := rawsys.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v == 0 && rawsys.Connected(fd) {
			return fd, true
		}
	}
	rawsys.Close(fd)
	return -1, false
}
