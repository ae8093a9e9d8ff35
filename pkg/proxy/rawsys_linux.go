package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The relay's data calls, made with RawSyscall: on nonblocking descriptors
// (every socket and pipe a loop owns is O_NONBLOCK, splice gets
// SPLICE_F_NONBLOCK, sends MSG_DONTWAIT) they never wait, so telling the
// scheduler about them (entersyscall/exitsyscall) only costs: a splice of a
// few hundred KiB runs long enough for sysmon to take the loop's P away and
// hand it to another thread, which the loop then has to get back. Measured
// with strace -c on a 256 MiB echo: futex and nanosleep calls outnumbered
// the splices. epoll_wait, which does wait, stays an ordinary system call.

func errnoErr(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	}
	return e
}

// spliceNB is splice(2) between two nonblocking descriptors, no offsets.
func spliceNB(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// readNB is read(2) on a nonblocking descriptor.
func readNB(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// sendNB is send(2) with MSG_DONTWAIT and MSG_NOSIGNAL (a peer that went
// away is EPIPE, never SIGPIPE).
func sendNB(fd int, b []byte) (int, error) {
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

// epollNow is epoll_wait(2) with a zero timeout: the ready events, or 0.
func epollNow(epfd int, events []unix.EpollEvent) int {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			panic("relay: epoll_wait: " + e.Error()) // EBADF, EINVAL: a bug
		}
		return int(r)
	}
}
