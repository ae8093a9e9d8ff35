// Package rawsys holds the system calls of bro-proxy's connection path
// made with RawSyscall: calls that never wait, so that telling the
// scheduler about them (entersyscall/exitsyscall) only costs.
//
// Two costs, both measured on the rig (issue 12). A splice of a few hundred
// KiB through an ordinary system call runs long enough for sysmon to take
// the loop's P away and hand it to another thread, which the loop then has
// to get back: strace -c on a 256 MiB echo counted more futex and nanosleep
// calls than splices. And an ordinary system call made while sysmon sleeps
// because every P was idle wakes sysmon (entersyscall), which then polls
// every 20 µs until the process is idle again: with a connection per
// pgbench transaction, each connection's setup (accept, connect, socket
// options, epoll registration) woke it, about four futex and eight
// nanosleep calls per connection.
//
// Every descriptor these are used on is nonblocking (sockets and pipes are
// O_NONBLOCK, splice gets SPLICE_F_NONBLOCK, sends MSG_DONTWAIT), and close
// and shutdown on a socket return at once unless SO_LINGER has a timeout,
// which nothing here sets. Waiting itself (epoll_wait with a timeout,
// accept on an empty queue) stays in the runtime's poller.
package rawsys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// errnoErr returns the common errors without allocating, like x/sys does.
func errnoErr(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	case unix.EINPROGRESS:
		return unix.EINPROGRESS
	}
	return e
}

// Splice is splice(2) between two nonblocking descriptors, no offsets.
func Splice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// Read is read(2) on a nonblocking descriptor.
func Read(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// Send is send(2) with MSG_DONTWAIT and MSG_NOSIGNAL (a peer that went
// away is EPIPE, never SIGPIPE).
func Send(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// EpollNow is epoll_wait(2) with a zero timeout: the number of ready
// events, or 0. It panics on EBADF or EINVAL, which only a bug can cause.
func EpollNow(epfd int, events []unix.EpollEvent) int {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			panic("epoll_wait: " + e.Error())
		}
		return int(r)
	}
}

// EpollCtl is epoll_ctl(2).
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// Accept4 is accept4(2) on a nonblocking listening socket: EAGAIN when no
// connection is waiting.
func Accept4(fd, flags int) (int, unix.Sockaddr, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, nil, errnoErr(e)
	}
	sa, err := sockaddr(&rsa, n)
	if err != nil {
		Close(int(r))
		return -1, nil, err
	}
	return int(r), sa, nil
}

// Connect is connect(2) of a nonblocking socket to an IPv4 or IPv6
// address: nil, EINPROGRESS, or why not.
func Connect(fd int, sa unix.Sockaddr) error {
	var rsa unix.RawSockaddrAny
	n, err := rawSockaddr(sa, &rsa)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(n))
	return errnoErr(e)
}

// GetsockoptInt is getsockopt(2) of an int option.
func GetsockoptInt(fd, level, opt int) (int, error) {
	var v int32
	n := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(v), nil
}

// SetsockoptInt is setsockopt(2) of an int option.
func SetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

// Connected reports whether the socket has a peer (getpeername(2)
// succeeds): a nonblocking connect that said EINPROGRESS has completed.
func Connected(fd int) bool {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, e := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return e == 0
}

// Shutdown is shutdown(2).
func Shutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

// Close is close(2) of a socket or pipe this package's callers own.
func Close(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}
