package handoff

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A server that accepts before it is ready (PostgreSQL answers "the database
// system is starting up" to a client it accepts during its start) must not
// see the host socket's queued clients until its unit is ready (Notify=).
// Refusing its accept() does not do: PostgreSQL 15 then sleeps 100 ms with
// its signals blocked, which delays its own readiness, twice. So while the
// Handler's Ready says no, a bind() of a host stream socket receives a
// placeholder instead: a listening socket of the agent's own on an ephemeral
// loopback port, which nobody else knows. The server listens and polls on
// it. Once ready, Wake connects to every placeholder; the server's poll
// returns, and at its accept() the Handler installs the host socket over
// the placeholder's descriptor and lets the accept run: on the host socket,
// whose queued clients are then served by a ready server.

// PlaceholderPrefix starts the names under which placeholders are kept in
// the file descriptor store, followed by the host port: an agent restarted
// between the server's bind and its readiness finds them again.
const PlaceholderPrefix = "placeholder-"

type placeholder struct {
	fd       int
	dev, ino uint64
	addr     unix.Sockaddr
	cloexec  bool   // the FD_CLOEXEC that the target's descriptor got at bind
	name     string // in the file descriptor store
}

// newPlaceholder opens a listening socket of s's family on the loopback
// address, blocking (a server blocked in accept() on it wakes with Wake's
// connection and tries again), and keeps it in the store.
func (t *Table) newPlaceholder(s *HostSocket, cloexec bool) (*placeholder, error) {
	fd, err := unix.Socket(s.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("placeholder socket: %w", err)
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if s.Family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("placeholder socket: bind: %w", err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("placeholder socket: listen: %w", err)
	}
	p, err := adopt(fd, cloexec)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	t.mu.Lock()
	t.seq++
	p.name = PlaceholderPrefix + strconv.Itoa(int(s.Port)) + "-" + strconv.Itoa(t.seq)
	t.mu.Unlock()
	if t.Store != nil {
		t.Store(p.name, fd)
	}
	return p, nil
}

func adopt(fd int, cloexec bool) (*placeholder, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("placeholder socket: %w", err)
	}
	addr, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("placeholder socket: getsockname: %w", err)
	}
	return &placeholder{fd: fd, dev: st.Dev, ino: st.Ino, addr: addr, cloexec: cloexec}, nil
}

// Adopt takes back a placeholder kept in the file descriptor store under
// name by an earlier run of the agent. It returns false, leaving fd to the
// caller, if name is not a placeholder's or names no host socket's port.
func (t *Table) Adopt(name string, fd int) bool {
	rest, ok := strings.CutPrefix(name, PlaceholderPrefix)
	if !ok {
		return false
	}
	portStr, _, _ := strings.Cut(rest, "-")
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return false
	}
	s := t.lookup(uint16(port), unix.SOCK_STREAM)
	if s == nil {
		return false
	}
	p, err := adopt(fd, true)
	if err != nil {
		return false
	}
	p.name = name
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.ph != nil {
		return false
	}
	s.ph = p
	t.placeholders++
	return true
}

// setPlaceholder records p as standing in for s in the target.
func (t *Table) setPlaceholder(s *HostSocket, p *placeholder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(s)
	s.ph = p
	t.placeholders++
}

// dropLocked closes s's placeholder, if any, and takes it out of the store.
func (t *Table) dropLocked(s *HostSocket) {
	if s.ph == nil {
		return
	}
	unix.Close(s.ph.fd)
	if t.Drop != nil {
		t.Drop(s.ph.name)
	}
	s.ph = nil
	t.placeholders--
}

// placeholderOf returns the host socket whose placeholder is (dev, ino).
func (t *Table) placeholderOf(dev, ino uint64) (*HostSocket, *placeholder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sockets {
		if s.ph != nil && s.ph.dev == dev && s.ph.ino == ino {
			return s, s.ph
		}
	}
	return nil, nil
}

// pending reports whether any placeholder waits to be replaced.
func (t *Table) pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.placeholders > 0
}

// Wake connects once to every placeholder, so that a server polling on one
// calls accept() and receives the host socket: call it once the server is
// ready. The connections are closed at once; they die with the placeholder.
func (t *Table) Wake() error {
	t.mu.Lock()
	var addrs []unix.Sockaddr
	var fams []int
	for _, s := range t.sockets {
		if s.ph != nil {
			addrs = append(addrs, s.ph.addr)
			fams = append(fams, s.Family)
		}
	}
	t.mu.Unlock()
	var first error
	for i, a := range addrs {
		fd, err := unix.Socket(fams[i], unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, a)
			unix.Close(fd)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("wake the server polling on a placeholder: %w", err)
		}
	}
	return first
}
