// Package sockdiag holds what the two users of netlink sock_diag (inet_diag,
// linux/inet_diag.h) share: the request header, the sizes of the two
// structures x/sys does not declare, and the walk over a reply's messages.
// pkg/allow looks up the owner of one socket by its exact 4-tuple;
// pkg/handoff counts a port's connections with a dump.
package sockdiag

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Sizes of struct inet_diag_req_v2 and struct inet_diag_msg, and where in
// the latter the owner's uid and the socket's inode are.
const (
	SizeofReqV2   = 56
	SizeofDiagMsg = 72
	OffUID        = 64
	OffInode      = 68
)

// PutHeader writes the netlink header of a SOCK_DIAG_BY_FAMILY request of
// len(b) bytes (header included) into b, with flags (NLM_F_REQUEST is
// added) and seq.
func PutHeader(b []byte, flags uint16, seq uint32) {
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|flags)
	ne.PutUint32(b[8:], seq)
}

// Each calls fn with the type, sequence number and payload of every netlink
// message in b, in order, until fn returns false. It returns an error for a
// message whose length does not fit.
func Each(b []byte, fn func(typ uint16, seq uint32, data []byte) bool) error {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("sock_diag reply: bad message length %d", l)
		}
		typ, seq, data := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[unix.NLMSG_HDRLEN:l]
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		if !fn(typ, seq, data) {
			return nil
		}
	}
	return nil
}

// Errno is the error of an NLMSG_ERROR payload (0 for an acknowledgement).
func Errno(data []byte) (unix.Errno, error) {
	if len(data) < 4 {
		return 0, fmt.Errorf("sock_diag reply: short error message")
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(data))), nil
}
