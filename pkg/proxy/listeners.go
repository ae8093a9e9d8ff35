package proxy

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"golang.org/x/sys/unix"
)

// Targets collects --target [NAME=]ADDR: named ones map to the inherited
// socket of that FileDescriptorName=, the others are positional.
type Targets struct {
	named      map[string]string
	positional []string
}

func (t *Targets) String() string { return "" }

// Empty reports that no --target was given.
func (t *Targets) Empty() bool  { return len(t.named) == 0 && len(t.positional) == 0 }
func (t *Targets) Type() string { return "[NAME=]HOST:PORT" }

func (t *Targets) Set(v string) error {
	if v == "" {
		return errors.New("empty target")
	}
	// An address never holds '=', so the first '=' separates the name.
	if name, addr, ok := strings.Cut(v, "="); ok {
		if name == "" || addr == "" {
			return fmt.Errorf("target %q: want NAME=HOST:PORT or HOST:PORT", v)
		}
		if t.named == nil {
			t.named = make(map[string]string)
		}
		if _, dup := t.named[name]; dup {
			return fmt.Errorf("target %q: name %q given twice", v, name)
		}
		t.named[name] = addr
		return nil
	}
	t.positional = append(t.positional, v)
	return nil
}

// Listener is one inherited socket and where its connections go: a stream
// Listener (TCP, unix) or a datagram socket (UDP, relayed per client flow).
type Listener struct {
	ln     net.Listener   // stream sockets
	pc     net.PacketConn // datagram sockets
	name   string
	target ns.Target
	// proxyProto is the PROXY protocol version written to the backend
	// before the client's bytes (0: none).
	proxyProto int
}

// Close closes our copy; systemd keeps its own, so the socket stays bound.
func (l Listener) Close() error {
	if l.pc != nil {
		return l.pc.Close()
	}
	return l.ln.Close()
}

// Name is the socket's FileDescriptorName=.
func (l Listener) Name() string { return l.name }

// Target is where the socket's connections go.
func (l Listener) Target() ns.Target { return l.target }

// Datagram reports a UDP socket.
func (l Listener) Datagram() bool { return l.pc != nil }

// ProxyProtocol is the PROXY protocol version sent to the backend (0: none).
func (l Listener) ProxyProtocol() int { return l.proxyProto }

// Addr is the local address the socket is bound to.
func (l Listener) Addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.ln.Addr()
}

// Inherit turns the LISTEN_FDS descriptors into listeners, refusing
// (as systemd-socket-proxyd does) none at all and anything but a listening
// stream socket, and gives each its target: by FileDescriptorName= first,
// then by position among unnamed --target flags, then the TARGET argument.
//
// pp gives the PROXY protocol version of each stream socket (datagram
// sockets never send one).
func Inherit(fds []fdpass.Inherited, targets Targets, def string, pp ProxyProtocols) ([]Listener, error) {
	var out []Listener
	fail := func(err error) ([]Listener, error) {
		// bro-proxy exits on this error: first close the clients queued on
		// the sockets, or systemd would trigger it again for them (drain.go)
		queued := dupListeners(out)
		for _, f := range fds[len(out):] {
			if d, derr := unix.FcntlInt(f.File.Fd(), unix.F_DUPFD_CLOEXEC, 0); derr == nil {
				queued = append(queued, d)
			}
		}
		for _, l := range out {
			l.Close()
		}
		for _, f := range fds {
			f.File.Close()
		}
		closed := 0
		for _, fd := range queued {
			closed += drainFD(fd)
			unix.Close(fd)
		}
		if closed > 0 {
			err = fmt.Errorf("%w (closed the clients queued: %d)", err, closed)
		}
		return nil, err
	}
	used := make(map[string]bool)
	for i, f := range fds {
		fd := int(f.File.Fd())
		sotype, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			if errors.Is(err, unix.ENOTSOCK) {
				return fail(fmt.Errorf("inherited fd %d (%s) is not a socket", fd, f.Name))
			}
			return fail(fmt.Errorf("inherited fd %d (%s): %w", fd, f.Name, err))
		}
		switch sotype {
		case unix.SOCK_STREAM:
			if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
				return fail(fmt.Errorf("inherited fd %d (%s) is not listening (Accept=yes in the socket unit? use Accept=no)", fd, f.Name))
			}
		case unix.SOCK_DGRAM:
			if domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || (domain != unix.AF_INET && domain != unix.AF_INET6) {
				return fail(fmt.Errorf("inherited fd %d (%s) is a datagram socket that is not UDP", fd, f.Name))
			}
		default:
			return fail(fmt.Errorf("inherited fd %d (%s) is socket type %d: want a stream or a UDP socket", fd, f.Name, sotype))
		}
		addr, how := def, "TARGET argument"
		if a, ok := targets.named[f.Name]; ok {
			addr, how = a, "--target "+f.Name+"="
			used[f.Name] = true
		} else if i < len(targets.positional) {
			addr, how = targets.positional[i], fmt.Sprintf("--target #%d", i+1)
		}
		if addr == "" {
			return fail(fmt.Errorf("no target for inherited fd %d (name %q): give TARGET, --target %s=HOST:PORT or one --target per socket", fd, f.Name, f.Name))
		}
		network := "tcp"
		switch {
		case sotype == unix.SOCK_DGRAM:
			network = "udp"
		case strings.HasPrefix(addr, "/"):
			network = "unix"
		}
		t, err := ns.ParseTarget(network, addr)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", how, err))
		}
		l := Listener{name: f.Name, target: t}
		if sotype == unix.SOCK_STREAM {
			l.proxyProto = pp.Version(f.Name)
		}
		if sotype == unix.SOCK_DGRAM {
			l.pc, err = net.FilePacketConn(f.File)
		} else {
			l.ln, err = net.FileListener(f.File)
		}
		if err != nil {
			return fail(fmt.Errorf("inherited fd %d (%s): %w", fd, f.Name, err))
		}
		f.File.Close() // net holds its own duplicate
		out = append(out, l)
	}
	for name := range targets.named {
		if !used[name] {
			return fail(fmt.Errorf("--target %s=…: no inherited socket is named %q (names: %s)", name, name, fdNames(fds)))
		}
	}
	if len(targets.positional) > len(fds) {
		return fail(fmt.Errorf("%d positional --target flags for %d inherited sockets", len(targets.positional), len(fds)))
	}
	return out, nil
}

func fdNames(fds []fdpass.Inherited) string {
	names := make([]string, len(fds))
	for i, f := range fds {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
