package handoff

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The four structures of <linux/seccomp.h> that golang.org/x/sys/unix does
// not declare. Their layout is the kernel's ABI; TestNotifSizes compares it
// with what SECCOMP_GET_NOTIF_SIZES reports.

// seccompData is struct seccomp_data: what the filter saw.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// seccompNotif is struct seccomp_notif, filled by SECCOMP_IOCTL_NOTIF_RECV.
// Pid is the id of the calling *thread*, in the receiver's pid namespace.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

// seccompNotifResp is struct seccomp_notif_resp, written with
// SECCOMP_IOCTL_NOTIF_SEND.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// seccompNotifAddfd is struct seccomp_notif_addfd, for
// SECCOMP_IOCTL_NOTIF_ADDFD.
type seccompNotifAddfd struct {
	ID         uint64
	Flags      uint32
	Srcfd      uint32
	Newfd      uint32
	NewfdFlags uint32
}

// seccompNotifSizes is struct seccomp_notif_sizes, from
// seccomp(SECCOMP_GET_NOTIF_SIZES).
type seccompNotifSizes struct {
	Notif     uint16
	NotifResp uint16
	Data      uint16
}

// notifSizes asks the running kernel how large its notification structures
// are. A newer kernel may know larger ones than this package; RECV and SEND
// then copy the kernel's size, so buffers are sized from this answer.
func notifSizes() (seccompNotifSizes, error) {
	var s seccompNotifSizes
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&s)))
	if errno != 0 {
		return s, fmt.Errorf("seccomp(SECCOMP_GET_NOTIF_SIZES): %w", errno)
	}
	return s, nil
}

// notifyFD is one seccomp listener with its receive and send buffers, sized
// for the running kernel and 8-byte aligned.
type notifyFD struct {
	fd   int
	recv []uint64
	send []uint64
}

func newNotifyFD(fd int) (*notifyFD, error) {
	s, err := notifSizes()
	if err != nil {
		return nil, err
	}
	words := func(kernel uint16, ours uintptr) int {
		return (max(int(kernel), int(ours)) + 7) / 8
	}
	return &notifyFD{
		fd:   fd,
		recv: make([]uint64, words(s.Notif, unsafe.Sizeof(seccompNotif{}))),
		send: make([]uint64, words(s.NotifResp, unsafe.Sizeof(seccompNotifResp{}))),
	}, nil
}

// errGone reports that the notification no longer exists: the target was
// killed, or a signal interrupted its system call (which the kernel then
// restarts with a new notification).
var errGone = errors.New("notification gone")

// receive reads one notification. It blocks while none is pending, so the
// caller polls first. EINTR is retried. A notification that vanished between
// the poll and the read (ENOENT) yields errGone.
func (n *notifyFD) receive() (seccompNotif, error) {
	clear(n.recv) // the kernel refuses a buffer that is not zeroed
	err := ioctlRetry(n.fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&n.recv[0]))
	if errors.Is(err, unix.ENOENT) {
		return seccompNotif{}, errGone
	}
	if err != nil {
		return seccompNotif{}, fmt.Errorf("receive seccomp notification: %w", err)
	}
	return *(*seccompNotif)(unsafe.Pointer(&n.recv[0])), nil
}

// respond answers notification id. With flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE
// the kernel runs the system call as if no filter had stopped it; otherwise
// the call returns val, or fails with -errno when errno is non-zero.
// It returns errGone if the target no longer waits for this answer.
func (n *notifyFD) respond(id uint64, val int64, errno int32, flags uint32) error {
	clear(n.send)
	*(*seccompNotifResp)(unsafe.Pointer(&n.send[0])) = seccompNotifResp{ID: id, Val: val, Error: errno, Flags: flags}
	err := ioctlRetry(n.fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&n.send[0]))
	if errors.Is(err, unix.ENOENT) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("answer seccomp notification %#x: %w", id, err)
	}
	return nil
}

// continueCall lets the target's system call run unchanged.
func (n *notifyFD) continueCall(id uint64) error {
	return n.respond(id, 0, 0, unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
}

// valid reports whether notification id still waits for an answer: the
// target thread is still stopped in that call, so a pid, a pidfd or memory
// read for it since receiving still belongs to that thread.
func (n *notifyFD) valid(id uint64) error {
	err := ioctlRetry(n.fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id))
	if errors.Is(err, unix.ENOENT) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("check seccomp notification %#x: %w", id, err)
	}
	return nil
}

// installFD makes the target's descriptor number newfd refer to our srcfd's
// open file description (SECCOMP_ADDFD_FLAG_SETFD: whatever newfd was is
// closed, as by dup2), with newfdFlags (0 or O_CLOEXEC). The target's system
// call is still waiting afterwards and must be answered.
func (n *notifyFD) installFD(id uint64, srcfd, newfd int, newfdFlags uint32) error {
	a := seccompNotifAddfd{
		ID:         id,
		Flags:      unix.SECCOMP_ADDFD_FLAG_SETFD,
		Srcfd:      uint32(srcfd),
		Newfd:      uint32(newfd),
		NewfdFlags: newfdFlags,
	}
	err := ioctlRetry(n.fd, unix.SECCOMP_IOCTL_NOTIF_ADDFD, unsafe.Pointer(&a))
	if errors.Is(err, unix.ENOENT) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("install descriptor %d as the target's %d: %w", srcfd, newfd, err)
	}
	return nil
}

func ioctlRetry(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}
