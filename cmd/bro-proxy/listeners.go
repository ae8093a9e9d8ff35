package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"golang.org/x/sys/unix"
)

// targetFlags collects --target [NAME=]ADDR: named ones map to the inherited
// socket of that FileDescriptorName=, the others are positional.
type targetFlags struct {
	named      map[string]string
	positional []string
}

func (t *targetFlags) String() string { return "" }
func (t *targetFlags) Type() string   { return "[NAME=]HOST:PORT" }

func (t *targetFlags) Set(v string) error {
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

// listener is one inherited socket and where its connections go: a stream
// listener (TCP, unix) or a datagram socket (UDP, relayed per client flow).
type listener struct {
	ln     net.Listener   // stream sockets
	pc     net.PacketConn // datagram sockets
	name   string
	target ns.Target
	// proxyProto is the PROXY protocol version written to the backend
	// before the client's bytes (0: none).
	proxyProto int
}

// Close closes our copy; systemd keeps its own, so the socket stays bound.
func (l listener) Close() error {
	if l.pc != nil {
		return l.pc.Close()
	}
	return l.ln.Close()
}

// Addr is the local address the socket is bound to.
func (l listener) Addr() net.Addr {
	if l.pc != nil {
		return l.pc.LocalAddr()
	}
	return l.ln.Addr()
}

// inheritListeners turns the LISTEN_FDS descriptors into listeners, refusing
// (as systemd-socket-proxyd does) none at all and anything but a listening
// stream socket, and gives each its target: by FileDescriptorName= first,
// then by position among unnamed --target flags, then the TARGET argument.
func inheritListeners(fds []fdpass.Inherited, targets targetFlags, def string) ([]listener, error) {
	var out []listener
	fail := func(err error) ([]listener, error) {
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
		l := listener{name: f.Name, target: t}
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
