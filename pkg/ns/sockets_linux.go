package ns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sockets creates sockets in one network namespace.
type Sockets interface {
	// Socket is socket(2) in the namespace. The descriptor is always
	// close-on-exec; pass unix.SOCK_NONBLOCK in typ for the Go poller.
	Socket(domain, typ, proto int) (int, error)
	// ConnectUnix returns a unix stream socket connected to path, resolved
	// in the mount namespace these sockets were entered with (the host's,
	// unless EnterMount), nonblocking and close-on-exec.
	ConnectUnix(path string) (int, error)
	// Close releases the namespace (ends the thread or the helper).
	Close() error
}

// connectUnix is socket(2) + connect(2) of a unix stream socket in the
// calling thread's mount namespace. A full accept queue is EAGAIN, which a
// caller retries like a refusal.
func connectUnix(path string) (int, error) {
	if len(path) == 0 || len(path) >= 108 {
		return -1, fmt.Errorf("unix socket path %q: want 1-107 bytes", path)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// ErrClosed is returned by Socket after Close.
var ErrClosed = errors.New("namespace released")

// ErrNotOwner is wrapped when a namespace belongs to a user namespace that
// the caller neither is in nor owns.
var ErrNotOwner = errors.New("namespace is not owned by this user")

// checkSocketArgs keeps what a namespace helper creates to the kinds a proxy
// needs, so the helper cannot be asked for raw or netlink sockets.
func checkSocketArgs(domain, typ, proto int) error {
	switch domain {
	case unix.AF_INET, unix.AF_INET6, unix.AF_UNIX:
	default:
		return fmt.Errorf("socket domain %d: want AF_INET, AF_INET6 or AF_UNIX", domain)
	}
	switch typ &^ (unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC) {
	case unix.SOCK_STREAM, unix.SOCK_DGRAM:
	default:
		return fmt.Errorf("socket type %d: want SOCK_STREAM or SOCK_DGRAM", typ)
	}
	if proto != 0 {
		return fmt.Errorf("socket protocol %d: want 0", proto)
	}
	return nil
}

// Current creates sockets in the caller's own network namespace.
func Current() Sockets { return current{} }

type current struct{}

func (current) Socket(domain, typ, proto int) (int, error) {
	if err := checkSocketArgs(domain, typ, proto); err != nil {
		return -1, err
	}
	return unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
}

func (current) ConnectUnix(path string) (int, error) { return connectUnix(path) }

func (current) Close() error { return nil }

// Enter returns a Sockets that creates sockets in the network namespace h.
// h stays owned by the caller. If h belongs to the caller's own user
// namespace, a locked thread joins it (this needs CAP_SYS_ADMIN); if it
// belongs to a user namespace the caller's uid owns, a helper process joins
// both; otherwise it returns an error wrapping ErrNotOwner and enters nothing.
func Enter(h *Handle) (Sockets, error) {
	owner, err := h.Owner()
	if err != nil {
		return nil, err
	}
	defer owner.Close()
	own, err := checkOwner(h, owner)
	if err != nil {
		return nil, err
	}
	if own {
		return newThread(h)
	}
	return startHelper(owner, h, nil)
}

// EnterMount is Enter for a container whose unix sockets are targets too:
// the sockets are made in network namespace h, and unix paths are resolved
// in mount namespace m, the container's filesystem, as the container's own
// processes see it (symlinks included, which never lead out of it). It
// always uses a helper: a mount namespace cannot be joined by a thread that
// shares its filesystem state with others. m must belong to the same user
// namespace as h.
func EnterMount(h, m *Handle) (Sockets, error) {
	owner, err := h.Owner()
	if err != nil {
		return nil, err
	}
	defer owner.Close()
	mowner, err := m.Owner()
	if err != nil {
		return nil, err
	}
	defer mowner.Close()
	if !owner.Equal(mowner) {
		return nil, fmt.Errorf("mount namespace %s and network namespace %s belong to different user namespaces: %w", m, h, ErrNotOwner)
	}
	own, err := checkOwner(h, owner)
	if err != nil {
		return nil, err
	}
	if own {
		return startHelper(nil, h, m)
	}
	return startHelper(owner, h, m)
}

// checkOwner is the one owner check before a namespace is entered: owner is
// the user namespace that owns network namespace h. own reports that owner
// is the caller's own user namespace (joining needs CAP_SYS_ADMIN there, and
// no user namespace is joined). Otherwise owner must have been created by the
// caller's effective uid, whose child user namespace it then is (a helper
// joins it first); if not, the error wraps ErrNotOwner.
func checkOwner(h, owner *Handle) (own bool, err error) {
	self, err := Open("/proc/self/ns/user")
	if err != nil {
		return false, err
	}
	defer self.Close()
	if owner.Equal(self) {
		return true, nil
	}
	uid, err := owner.OwnerUID()
	if err != nil {
		return false, err
	}
	if euid := os.Geteuid(); uid != euid {
		return false, fmt.Errorf("network namespace %s belongs to a user namespace of uid %d, not %d: %w", h, uid, euid, ErrNotOwner)
	}
	return false, nil
}

// thread creates sockets from one goroutine locked to an OS thread that has
// joined the namespace for good.
type thread struct {
	reqs chan threadReq
	done chan struct{}
	once sync.Once
}

type threadReq struct {
	domain, typ, proto int
	reply              chan threadReply
}

type threadReply struct {
	fd  int
	err error
}

func newThread(h *Handle) (*thread, error) {
	t := &thread{reqs: make(chan threadReq), done: make(chan struct{})}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(netns.NsHandle(h.Fd())); err != nil {
			// setns failed, so the thread is still in its own namespace
			// and may go back to the scheduler.
			runtime.UnlockOSThread()
			ready <- fmt.Errorf("join network namespace %s: %w", h, err)
			return
		}
		ready <- nil
		for {
			select {
			case r := <-t.reqs:
				fd, err := unix.Socket(r.domain, r.typ|unix.SOCK_CLOEXEC, r.proto)
				r.reply <- threadReply{fd, err}
			case <-t.done:
				return
			}
		}
		// Return still locked: the runtime ends this thread rather than
		// reuse one that sits in another network namespace.
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return t, nil
}

func (t *thread) Socket(domain, typ, proto int) (int, error) {
	if err := checkSocketArgs(domain, typ, proto); err != nil {
		return -1, err
	}
	reply := make(chan threadReply, 1)
	select {
	case t.reqs <- threadReq{domain, typ, proto, reply}:
	case <-t.done:
		return -1, ErrClosed
	}
	r := <-reply
	return r.fd, r.err
}

// ConnectUnix resolves path in the host's mount namespace: the thread joined
// only the network namespace.
func (t *thread) ConnectUnix(path string) (int, error) { return connectUnix(path) }

func (t *thread) Close() error {
	t.once.Do(func() { close(t.done) })
	return nil
}
