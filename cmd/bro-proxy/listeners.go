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

// listener is one inherited socket and where its connections go.
type listener struct {
	ln     net.Listener
	name   string
	target ns.Target
}

// inheritListeners turns the LISTEN_FDS descriptors into listeners, refusing
// (as systemd-socket-proxyd does) none at all and anything but a listening
// stream socket, and gives each its target: by FileDescriptorName= first,
// then by position among unnamed --target flags, then the TARGET argument.
func inheritListeners(fds []fdpass.Inherited, targets targetFlags, def string) ([]listener, error) {
	var out []listener
	fail := func(err error) ([]listener, error) {
		for _, l := range out {
			l.ln.Close()
		}
		for _, f := range fds {
			f.File.Close()
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
		if sotype == unix.SOCK_DGRAM {
			return fail(fmt.Errorf("inherited fd %d (%s) is a datagram socket: UDP is not supported by this bro-proxy", fd, f.Name))
		}
		if sotype != unix.SOCK_STREAM {
			return fail(fmt.Errorf("inherited fd %d (%s) is socket type %d: want a stream socket", fd, f.Name, sotype))
		}
		if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
			return fail(fmt.Errorf("inherited fd %d (%s) is not listening (Accept=yes in the socket unit? use Accept=no)", fd, f.Name))
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
		if strings.HasPrefix(addr, "/") {
			network = "unix"
		}
		t, err := ns.ParseTarget(network, addr)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", how, err))
		}
		ln, err := net.FileListener(f.File)
		if err != nil {
			return fail(fmt.Errorf("inherited fd %d (%s): %w", fd, f.Name, err))
		}
		f.File.Close() // FileListener holds its own duplicate
		out = append(out, listener{ln: ln, name: f.Name, target: t})
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
