package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// nativeArch is the AUDIT_ARCH_* value of notifications from this
// architecture's own system call ABI; the numbers of unix.SYS_BIND and
// unix.SYS_LISTEN hold for it only. Calls through a compat ABI (i386 on
// x86_64, arm on arm64) continue unchanged. x32 calls carry the x86_64 arch
// with __X32_SYSCALL_BIT in the number, so they never match either.
var nativeArch = map[string]uint32{
	"amd64":   unix.AUDIT_ARCH_X86_64,
	"arm64":   unix.AUDIT_ARCH_AARCH64,
	"ppc64le": unix.AUDIT_ARCH_PPC64LE,
	"s390x":   unix.AUDIT_ARCH_S390X,
	"riscv64": unix.AUDIT_ARCH_RISCV64,
}[runtime.GOARCH]

// Handler answers the notifications of seccomp listeners, one Serve per
// listener, giving out the sockets of Table. The zero Handler has no sockets
// and lets every call continue.
type Handler struct {
	Table *Table
	Log   *logrus.Entry // nil discards
	// Ready, when set, holds the host stream sockets' clients back from the
	// server until it reports true: a bind() meanwhile receives a
	// placeholder, which the server's first accept() after Table.Wake
	// replaces by the host socket (placeholder_linux.go). The filter
	// notifies accept only for such containers (Notify=); with no
	// placeholder outstanding every accept continues unchanged without being
	// looked at.
	Ready func() bool
}

// answer is what a notification gets.
type answer int

const (
	proceed answer = iota // SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs the call
	succeed               // return 0 without running the call
)

// Serve answers the notifications of seccomp listener fd until every process
// under its filter has exited (nil), ctx is done (ctx.Err()), or the listener
// fails (an error). It owns fd and closes it before returning.
//
// A failure with one notification (the target exited, its memory or
// descriptor unreadable) is logged and the call continues unchanged: it never
// ends Serve.
func (h *Handler) Serve(ctx context.Context, fd int) error {
	n, err := newNotifyFD(fd)
	if err != nil {
		unix.Close(fd)
		return err
	}
	// Non-blocking, the descriptor joins Go's poller: no thread sits in an
	// ioctl, and closing the file ends the wait.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("seccomp listener %d: set non-blocking: %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), "seccomp-listener")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("seccomp listener %d: %w", fd, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	log := h.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	for {
		var hup bool
		var lerr error
		// Everything happens inside Read, which holds the descriptor open:
		// a concurrent Close cannot let its number be reused under us.
		err := rc.Read(func(fd uintptr) bool {
			ready, hangup, err := pollNow(int(fd))
			switch {
			case err != nil:
				lerr = err
				return true
			case hangup:
				hup = true
				return true
			case !ready:
				return false
			}
			req, err := n.receive()
			if errors.Is(err, errGone) {
				return true
			}
			if err != nil {
				lerr = err
				return true
			}
			h.handle(n, req, log)
			return true
		})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("wait for seccomp notifications: %w", err)
		case lerr != nil:
			return lerr
		case hup:
			return nil
		}
	}
}

// pollNow reports, without waiting, whether a notification is pending and
// whether every process under the filter has exited (POLLHUP, Linux 5.8).
func pollNow(fd int) (ready, hangup bool, err error) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, false, fmt.Errorf("poll seccomp listener: %w", err)
		}
		return p[0].Revents&unix.POLLIN != 0, p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0, nil
	}
}

// handle decides and answers one notification.
func (h *Handler) handle(n *notifyFD, req seccompNotif, log *logrus.Entry) {
	ans, err := proceed, error(nil)
	var name string
	if h.Table != nil && req.Data.Arch == nativeArch {
		switch req.Data.Nr {
		case unix.SYS_BIND:
			name = "bind"
			ans, err = h.bind(n, &req, log)
		case unix.SYS_LISTEN:
			name = "listen"
			ans, err = h.listen(n, &req)
		case unix.SYS_ACCEPT, unix.SYS_ACCEPT4:
			name = "accept"
			if h.Table.pending() {
				ans, err = h.accept(n, &req, log)
			}
		}
	}
	log = log.WithFields(logrus.Fields{"tid": req.Pid, "syscall": name, "fd": int32(req.Data.Args[0])})
	switch {
	case errors.Is(err, errGone):
		log.Debug("target no longer waits")
		return
	case err != nil:
		log.WithError(err).Warn("cannot inspect the call; it continues unchanged")
		ans = proceed
	}
	if ans == proceed {
		err = n.continueCall(req.ID)
	} else {
		err = n.respond(req.ID, 0, 0, 0)
	}
	switch {
	case errors.Is(err, errGone):
		log.Debug("target no longer waits")
	case err != nil:
		log.WithError(err).Warn("cannot answer")
	}
}

// bind gives the target the host socket for the port and type of its bind(),
// if the Table has one and nobody holds it. The sockaddr is read first and
// only a matching port costs a pidfd; ID_VALID after all reads makes sure
// they were of the thread still stopped in this call.
func (h *Handler) bind(n *notifyFD, req *seccompNotif, log *logrus.Entry) (answer, error) {
	tid := int(req.Pid)
	fd := int(int32(req.Data.Args[0]))
	addr := uintptr(req.Data.Args[1])
	addrlen := int(uint32(req.Data.Args[2]))
	if addrlen < 2 || fd < 0 {
		return proceed, nil
	}
	buf := make([]byte, min(addrlen, unix.SizeofSockaddrInet6))
	if err := readMem(tid, addr, buf); err != nil {
		return proceed, err
	}
	family, port, ok := parseSockaddr(buf, addrlen)
	if !ok || !h.Table.byPort(port) {
		return proceed, nil
	}
	pid, pidfd, err := openTarget(tid)
	if err != nil {
		return proceed, err
	}
	kept := false
	defer func() {
		if !kept {
			unix.Close(pidfd)
		}
	}()
	ts, err := inspectFD(pidfd, fd)
	if err != nil {
		return proceed, err
	}
	if err := n.valid(req.ID); err != nil {
		return proceed, err
	}
	if ts.notASocket || ts.family != family {
		return proceed, nil // the kernel refuses it as it would have
	}
	if h.Table.identify(ts.dev, ts.ino) != nil {
		// Already the host socket, which is bound: a bind() restarted after
		// a signal interrupted the first answer, once the socket was in.
		return succeed, nil
	}
	if s, _ := h.Table.placeholderOf(ts.dev, ts.ino); s != nil {
		return succeed, nil // the same, for a placeholder
	}
	s := h.Table.lookup(port, ts.typ)
	if s == nil {
		return proceed, nil
	}
	log = log.WithFields(logrus.Fields{"pid": pid, "port": port, "type": typeName(s.Type)})
	if !h.Table.claim(s, pidfd) {
		log.Info("host socket held by another process; this bind proceeds normally")
		return proceed, nil
	}
	kept = true
	// FD_CLOEXEC is the descriptor's, not the socket's: keep the target's
	// when fdinfo tells it, else assume close-on-exec, as servers that
	// create sockets with SOCK_CLOEXEC expect.
	var flags uint32 = unix.O_CLOEXEC
	if cloexec, ok := fdCloexec(pid, fd); ok && !cloexec {
		flags = 0
	}
	if s.Type == unix.SOCK_STREAM && h.Ready != nil && !h.Ready() {
		return h.bindPlaceholder(n, req, s, pidfd, fd, flags, log)
	}
	if err := n.installFD(req.ID, s.FD, fd, flags); err != nil {
		h.Table.release(s, pidfd)
		return proceed, err
	}
	log.Info("gave the host socket to bind()")
	return succeed, nil
}

// bindPlaceholder gives a server that is not ready yet a placeholder for
// host socket s, which it holds now.
func (h *Handler) bindPlaceholder(n *notifyFD, req *seccompNotif, s *HostSocket, pidfd, fd int, flags uint32, log *logrus.Entry) (answer, error) {
	p, err := h.Table.newPlaceholder(s, flags&unix.O_CLOEXEC != 0)
	if err != nil {
		// Better a server that may answer its first clients "not ready"
		// than one that never gets the host socket.
		log.WithError(err).Warn("cannot make a placeholder; giving bind() the host socket before the server is ready")
		if err := n.installFD(req.ID, s.FD, fd, flags); err != nil {
			h.Table.release(s, pidfd)
			return proceed, err
		}
		return succeed, nil
	}
	if err := n.installFD(req.ID, p.fd, fd, flags); err != nil {
		unix.Close(p.fd)
		if h.Table.Drop != nil {
			h.Table.Drop(p.name)
		}
		h.Table.release(s, pidfd)
		return proceed, err
	}
	h.Table.setPlaceholder(s, p)
	log.Info("gave bind() a placeholder of the host socket until the server is ready")
	if h.Ready() {
		h.Table.Wake() // ready meanwhile: the Wake that opened the gate missed it
	}
	return succeed, nil
}

// listen answers success for a listen() on a host socket that listens
// already, or on a placeholder, without running it: the server's backlog
// argument would replace the host socket's (systemd's Backlog=). Every
// other listen() continues.
func (h *Handler) listen(n *notifyFD, req *seccompNotif) (answer, error) {
	ts, ok, err := h.targetFD(n, req)
	if err != nil || !ok {
		return proceed, err
	}
	if s := h.Table.identify(ts.dev, ts.ino); s != nil && s.listening {
		return succeed, nil
	}
	if s, _ := h.Table.placeholderOf(ts.dev, ts.ino); s != nil {
		return succeed, nil
	}
	return proceed, nil
}

// accept replaces a placeholder by its host socket once the server is
// ready, and lets the accept() run: on the host socket, whose queued
// clients it takes. Before, and for every other descriptor, the accept
// continues unchanged.
func (h *Handler) accept(n *notifyFD, req *seccompNotif, log *logrus.Entry) (answer, error) {
	if h.Ready != nil && !h.Ready() {
		return proceed, nil
	}
	ts, ok, err := h.targetFD(n, req)
	if err != nil || !ok {
		return proceed, err
	}
	s, p := h.Table.placeholderOf(ts.dev, ts.ino)
	if s == nil {
		return proceed, nil
	}
	var flags uint32
	if p.cloexec {
		flags = unix.O_CLOEXEC
	}
	if err := n.installFD(req.ID, s.FD, int(int32(req.Data.Args[0])), flags); err != nil {
		return proceed, err
	}
	h.Table.mu.Lock()
	h.Table.dropLocked(s)
	h.Table.mu.Unlock()
	log.WithField("port", s.Port).Info("the server is ready: replaced the placeholder by the host socket")
	return proceed, nil
}

// targetFD inspects the descriptor that the call's first argument names in
// the target; ok is false for a negative one. Checked valid after reading.
func (h *Handler) targetFD(n *notifyFD, req *seccompNotif) (targetSocket, bool, error) {
	fd := int(int32(req.Data.Args[0]))
	if fd < 0 {
		return targetSocket{}, false, nil
	}
	_, pidfd, err := openTarget(int(req.Pid))
	if err != nil {
		return targetSocket{}, false, err
	}
	defer unix.Close(pidfd)
	ts, err := inspectFD(pidfd, fd)
	if err != nil {
		return targetSocket{}, false, err
	}
	if err := n.valid(req.ID); err != nil {
		return targetSocket{}, false, err
	}
	return ts, true, nil
}

// openTarget returns the process id of thread tid and a pidfd for it. The
// caller checks ID_VALID afterwards: only then is it sure the pid was not
// reused in between.
func openTarget(tid int) (pid, pidfd int, err error) {
	pid, err = tgid(tid)
	if err != nil {
		return 0, -1, err
	}
	pidfd, err = unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	return pid, pidfd, nil
}
