package handoff

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// readMem copies len(buf) bytes at addr out of thread tid with
// process_vm_readv. It passes the same ptrace access check as pidfd_getfd,
// which the owner of the container's user namespace meets, where opening
// /proc/PID/mem is refused for a server running as a non-root container user.
func readMem(tid int, addr uintptr, buf []byte) error {
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(buf)}}
	n, err := unix.ProcessVMReadv(tid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("read %d bytes at %#x of thread %d: %w", len(buf), addr, tid, err)
	}
	if n != len(buf) {
		return fmt.Errorf("read %d bytes at %#x of thread %d: got %d", len(buf), addr, tid, n)
	}
	return nil
}

// tgid returns the thread group (process) id of thread tid. A notification
// names the calling thread, but pidfd_open without PIDFD_THREAD (Linux 6.9)
// accepts only a thread group leader, and a holder must be the process, which
// outlives any one of its threads.
func tgid(tid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("thread group of thread %d: %w", tid, err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			id, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("thread group of thread %d: Tgid %q: %w", tid, bytes.TrimSpace(v), err)
			}
			return id, nil
		}
	}
	return 0, fmt.Errorf("thread group of thread %d: no Tgid in /proc/%d/status", tid, tid)
}

// targetSocket is what a duplicate of the target's descriptor tells.
type targetSocket struct {
	dev, ino    uint64
	family, typ int
	notASocket  bool
}

// inspectFD duplicates descriptor fd of the process behind pidfd
// (pidfd_getfd), reads what identifies it and closes the duplicate. SO_TYPE
// and SO_DOMAIN of another process's descriptor cannot be read any other way
// without /proc/PID/fdinfo, which is refused for a non-root container user.
func inspectFD(pidfd, fd int) (targetSocket, error) {
	var ts targetSocket
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return ts, fmt.Errorf("duplicate the target's descriptor %d: %w", fd, err)
	}
	defer unix.Close(dup)
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		return ts, fmt.Errorf("stat the target's descriptor %d: %w", fd, err)
	}
	ts.dev, ts.ino = st.Dev, st.Ino
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		ts.notASocket = true
		return ts, nil
	}
	if ts.family, err = unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return ts, fmt.Errorf("read SO_DOMAIN of the target's descriptor %d: %w", fd, err)
	}
	if ts.typ, err = unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return ts, fmt.Errorf("read SO_TYPE of the target's descriptor %d: %w", fd, err)
	}
	return ts, nil
}

// fdCloexec reads FD_CLOEXEC of the target's descriptor from
// /proc/PID/fdinfo. The flag belongs to the descriptor, not to the open file,
// so pidfd_getfd cannot tell it; fdinfo can when the target runs as our own
// user, and is refused otherwise (ok false).
func fdCloexec(pid, fd int) (cloexec, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return false, false
	}
	for line := range bytes.Lines(b) {
		if v, found := bytes.CutPrefix(line, []byte("flags:")); found {
			f, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 64)
			if err != nil {
				return false, false
			}
			return f&unix.O_CLOEXEC != 0, true
		}
	}
	return false, false
}

// parseSockaddr returns the port of a sockaddr_in or sockaddr_in6 read from a target
// whose bind() passed addrlen, and the address family; ok is false for any
// other family or for a length the kernel would refuse.
func parseSockaddr(b []byte, addrlen int) (family int, port uint16, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	family = int(binary.NativeEndian.Uint16(b)) // sa_family_t is in host order
	switch family {
	case unix.AF_INET:
		if addrlen < unix.SizeofSockaddrInet4 || len(b) < unix.SizeofSockaddrInet4 {
			return family, 0, false
		}
	case unix.AF_INET6:
		// Linux accepts the 24-byte RFC 2133 form without sin6_scope_id.
		if addrlen < 24 || len(b) < 24 {
			return family, 0, false
		}
	default:
		return family, 0, false
	}
	return family, binary.BigEndian.Uint16(b[2:]), true // sin_port is in network order
}
