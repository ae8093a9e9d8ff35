package handoff

import (
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inetDiagReqV2 is struct inet_diag_req_v2 (linux/inet_diag.h).
type inetDiagReqV2 struct {
	Family   uint8
	Protocol uint8
	Ext      uint8
	Pad      uint8
	States   uint32
	ID       inetDiagSockID
}

type inetDiagSockID struct {
	Sport, Dport [2]byte // network order
	Src, Dst     [16]byte
	If           uint32
	Cookie       [2]uint32
}

// inetDiagMsg is struct inet_diag_msg. For a listening TCP socket the kernel
// puts the accept queue's length in Rqueue and its limit, the backlog that
// listen() set, in Wqueue (what ss -lt shows as Recv-Q and Send-Q).
type inetDiagMsg struct {
	Family, State, Timer, Retrans uint8
	ID                            inetDiagSockID
	Expires, Rqueue, Wqueue       uint32
	UID, Inode                    uint32
}

// listenBacklog returns the backlog of the listening IPv4 TCP socket with
// inode ino in this network namespace, read with NETLINK_SOCK_DIAG (no
// privilege needed).
func listenBacklog(t *testing.T, ino uint64) uint32 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatalf("sock_diag socket: %v", err)
	}
	defer unix.Close(fd)
	req := inetDiagReqV2{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, States: 1 << 10 /* TCP_LISTEN */}
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + unsafe.Sizeof(req)),
		Type:  unix.SOCK_DIAG_BY_FAMILY,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
	}
	msg := append(unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unix.SizeofNlMsghdr),
		unsafe.Slice((*byte)(unsafe.Pointer(&req)), unsafe.Sizeof(req))...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatalf("sock_diag request: %v", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("sock_diag answer: %v", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatalf("sock_diag answer: %v", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				t.Fatalf("no listening socket with inode %d", ino)
			case unix.NLMSG_ERROR:
				t.Fatalf("sock_diag: error %d", int32(binary.NativeEndian.Uint32(m.Data)))
			}
			if len(m.Data) < int(unsafe.Sizeof(inetDiagMsg{})) {
				continue
			}
			d := (*inetDiagMsg)(unsafe.Pointer(&m.Data[0]))
			if uint64(d.Inode) == ino {
				return d.Wqueue
			}
		}
	}
}
