package proxy

import (
	"errors"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Clients left queued when bro-proxy gives up.
//
// The activator's socket has no trigger limit (pkg/units/templates), so a
// service that exits while clients wait in the socket's accept queue would be
// triggered again at once. A clean exit (SIGTERM, idle) leaves them there on
// purpose: the next bro-proxy, started for them, serves them. An exit on an
// error (the container never appeared, a listener failed, a configuration
// the inherited sockets do not fit) would leave them waiting for a proxy that
// fails the same way, so bro-proxy accepts and closes them first: the
// clients see their connection closed, not a hang.

// drainMax bounds one drain (the accept queue is at most --connections-max
// long; clients keep arriving while it runs).
const drainMax = 1 << 16

// drainFD closes, without blocking, every connection queued on the listening
// stream socket fd, or reads and drops every datagram queued on the datagram
// socket fd, and returns how many it closed or dropped. Any other descriptor
// is left alone.
func drainFD(fd int) int {
	sotype, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return 0
	}
	switch sotype {
	case unix.SOCK_STREAM:
		if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
			return 0
		}
	case unix.SOCK_DGRAM:
	default:
		return 0
	}
	var buf [1]byte // datagrams are dropped: truncating them is fine
	n := 0
	for i := 0; i < drainMax; i++ {
		// poll first: the descriptor may be in blocking mode (a dup, or
		// fresh from LISTEN_FDS), and an empty queue must end the drain
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		r, err := unix.Poll(pfd, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || r == 0 || pfd[0].Revents&unix.POLLIN == 0 {
			break
		}
		if sotype == unix.SOCK_STREAM {
			c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ECONNABORTED) {
				continue
			}
			if err != nil {
				break
			}
			unix.Close(c)
		} else if _, _, err := unix.Recvfrom(fd, buf[:], unix.MSG_DONTWAIT); err != nil {
			break
		}
		n++
	}
	return n
}

// dupListeners duplicates the descriptors of ls, so that they can be drained
// after the listeners themselves are closed (which is what ends the accept
// loops). Listeners whose descriptor cannot be had are skipped.
func dupListeners(ls []Listener) []int {
	var fds []int
	for _, l := range ls {
		var c any = l.ln
		if l.pc != nil {
			c = l.pc
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			continue
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		rc.Control(func(fd uintptr) {
			if d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
				fds = append(fds, d)
			}
		})
	}
	return fds
}

// drainFDs drains and closes fds, logging how many clients it closed.
func drainFDs(fds []int, why string, log *logrus.Entry) int {
	n := 0
	for _, fd := range fds {
		n += drainFD(fd)
		unix.Close(fd)
	}
	if n > 0 {
		log.WithFields(logrus.Fields{"clients": n, "reason": why}).Warn("closed the clients still queued: exiting on an error")
	}
	return n
}
