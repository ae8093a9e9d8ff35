package handoff

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// HostSocket describes one socket of the host that a bind() in a container
// may receive. NewTable reads every field from the descriptor itself.
type HostSocket struct {
	FD     int    // the host's descriptor; the Table does not own it
	Port   uint16 // the port it is bound to
	Type   int    // unix.SOCK_STREAM or unix.SOCK_DGRAM
	Family int    // unix.AF_INET or unix.AF_INET6

	dev, ino  uint64 // identity of the socket, to recognise it in a target
	listening bool   // SO_ACCEPTCONN: a listen() on it may be answered for it

	// holder is a pidfd of the process the socket was last given to, -1
	// while nobody holds it. Guarded by Table.mu.
	holder int
	// ph stands in for the socket in the holder until the server is ready
	// (placeholder_linux.go). Guarded by Table.mu.
	ph *placeholder
}

// Table is the set of host sockets that Handlers give out, shared by every
// Handler of one container: runc opens a new listener for each podman exec,
// and a restarted container brings a new one, yet each host socket is held by
// at most one process at a time.
type Table struct {
	// Store and Drop, when set, keep placeholders in systemd's file
	// descriptor store (see Agent), so that a restarted agent can Adopt them.
	Store func(name string, fd int) error
	Drop  func(name string)

	mu           sync.Mutex
	sockets      []*HostSocket
	seq          int // names placeholders
	placeholders int // outstanding, for a cheap test at accept()
}

// NewTable describes each of fds, which must be bound AF_INET or AF_INET6
// stream or datagram sockets with distinct (port, type). The descriptors stay
// the caller's and must stay open as long as the Table is used.
//
// Errors: a descriptor that is not a socket, of another family or type, or
// not bound (port 0); two sockets with the same port and type.
func NewTable(fds ...int) (*Table, error) {
	t := &Table{}
	for _, fd := range fds {
		s, err := describe(fd)
		if err != nil {
			return nil, err
		}
		for _, o := range t.sockets {
			if o.Port == s.Port && o.Type == s.Type {
				return nil, fmt.Errorf("host sockets %d and %d: both %s port %d", o.FD, fd, typeName(s.Type), s.Port)
			}
		}
		t.sockets = append(t.sockets, s)
	}
	return t, nil
}

// Sockets returns the table's sockets, for logging and tests.
func (t *Table) Sockets() []HostSocket {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]HostSocket, len(t.sockets))
	for i, s := range t.sockets {
		out[i] = *s
	}
	return out
}

// Close forgets the holders (their pidfds are closed). The host descriptors
// stay open: they are the caller's.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sockets {
		if s.holder >= 0 {
			unix.Close(s.holder)
			s.holder = -1
		}
	}
}

func describe(fd int) (*HostSocket, error) {
	s := &HostSocket{FD: fd, holder: -1}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("host socket %d: %w", fd, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("host socket %d: not a socket", fd)
	}
	s.dev, s.ino = st.Dev, st.Ino
	var err error
	if s.Family, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return nil, fmt.Errorf("host socket %d: read SO_DOMAIN: %w", fd, err)
	}
	if s.Type, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("host socket %d: read SO_TYPE: %w", fd, err)
	}
	if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
		return nil, fmt.Errorf("host socket %d: family %d, want AF_INET or AF_INET6", fd, s.Family)
	}
	if s.Type != unix.SOCK_STREAM && s.Type != unix.SOCK_DGRAM {
		return nil, fmt.Errorf("host socket %d: type %d, want SOCK_STREAM or SOCK_DGRAM", fd, s.Type)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("host socket %d: getsockname: %w", fd, err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.Port = uint16(a.Port)
	case *unix.SockaddrInet6:
		s.Port = uint16(a.Port)
	}
	if s.Port == 0 {
		return nil, fmt.Errorf("host socket %d: not bound to a port", fd)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("host socket %d: read SO_ACCEPTCONN: %w", fd, err)
	}
	s.listening = acc != 0
	return s, nil
}

// byPort returns whether any host socket has port p: the cheap test that
// lets every other bind continue without touching the target.
func (t *Table) byPort(p uint16) bool {
	for _, s := range t.sockets { // immutable after NewTable
		if s.Port == p {
			return true
		}
	}
	return false
}

// lookup returns the host socket for (port, type), or nil.
func (t *Table) lookup(port uint16, typ int) *HostSocket {
	for _, s := range t.sockets {
		if s.Port == port && s.Type == typ {
			return s
		}
	}
	return nil
}

// identify returns the host socket whose open file is (dev, ino), or nil.
func (t *Table) identify(dev, ino uint64) *HostSocket {
	for _, s := range t.sockets {
		if s.dev == dev && s.ino == ino {
			return s
		}
	}
	return nil
}

// claim decides whether the process behind pidfd may receive s: yes if
// nobody holds it or its holder has exited. On yes the Table keeps pidfd as
// the new holder (the caller must call release if handing over then fails);
// on no the caller keeps pidfd.
func (t *Table) claim(s *HostSocket, pidfd int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.holder >= 0 && alive(s.holder) {
		return false
	}
	if s.holder >= 0 {
		unix.Close(s.holder)
	}
	s.holder = pidfd
	return true
}

// release undoes a claim whose hand-over failed; pidfd is closed.
func (t *Table) release(s *HostSocket, pidfd int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.holder == pidfd {
		s.holder = -1
	}
	unix.Close(pidfd)
}

// alive reports whether the process of pidfd still runs: a pidfd polls
// readable once its process has exited.
func alive(pidfd int) bool {
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0
	}
}

func typeName(t int) string {
	switch t {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "datagram"
	}
	return fmt.Sprintf("type %d", t)
}
