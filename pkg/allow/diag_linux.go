package allow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brothaman/brothaman-go/internal/sockdiag"
)

// The owner of a client's socket, by netlink sock_diag (inet_diag,
// linux/inet_diag.h): one request for the socket of an exact 4-tuple (not a
// dump of every socket), answered in the sender's own system call. x/sys
// has the constants but not these two structures.

var (
	// ErrNoSocket: this network namespace holds no socket of that 4-tuple
	// (the client closed and it is gone, or the client is not on this host).
	ErrNoSocket = errors.New("no such socket")
	// ErrClosed: the socket is there but closed by its owner (time-wait, an
	// orphan): it has no owner any more.
	ErrClosed = errors.New("socket closed by its owner")
)

// diagTimeout bounds a lookup: the kernel answers before sendmsg returns, so
// only a broken socket ever waits.
const diagTimeout = time.Second

// Diag looks up who owns a socket of the network namespace it was opened
// in. It holds a few netlink sockets, each used by one lookup at a time.
type Diag struct {
	pool chan int
	seq  atomic.Uint32
}

// OpenDiag opens n netlink sock_diag sockets in the calling thread's network
// namespace. It fails if the family is not allowed (systemd's
// RestrictAddressFamilies= without AF_NETLINK gives EAFNOSUPPORT).
func OpenDiag(n int) (*Diag, error) {
	d := &Diag{pool: make(chan int, n)}
	for range n {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("open netlink sock_diag socket: %w", err)
		}
		// connected to the kernel: plain write and read, no address to
		// pass or receive (no allocation per lookup)
		if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			d.Close()
			return nil, fmt.Errorf("netlink sock_diag socket: connect: %w", err)
		}
		tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			d.Close()
			return nil, fmt.Errorf("netlink sock_diag socket: SO_RCVTIMEO: %w", err)
		}
		d.pool <- fd
	}
	return d, nil
}

// Close closes the netlink sockets not in use; call it when no lookup runs.
func (d *Diag) Close() {
	for {
		select {
		case fd := <-d.pool:
			unix.Close(fd)
		default:
			return
		}
	}
}

// Owner returns the uid owning the socket whose own address is sock and
// whose peer is peer, for proto unix.IPPROTO_TCP or unix.IPPROTO_UDP. A UDP
// socket that is not connected is found by its bound address alone. The
// uid is as seen from the user namespace the Diag was opened in. It returns
// ErrNoSocket, ErrClosed, or an error of the lookup itself.
func (d *Diag) Owner(proto int, sock, peer netip.AddrPort) (uint32, error) {
	fd := <-d.pool
	defer func() { d.pool <- fd }()
	seq := d.seq.Add(1)
	var req [unix.NLMSG_HDRLEN + sockdiag.SizeofReqV2]byte
	encodeRequest(req[:], seq, proto, sock, peer)
	if _, err := unix.Write(fd, req[:]); err != nil {
		return 0, fmt.Errorf("sock_diag request: %w", err)
	}
	var buf [1024]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("sock_diag reply: %w", err)
		}
		uid, done, err := decodeReply(buf[:n], seq)
		if done {
			return uid, err
		}
		// a reply to an earlier request that timed out: read on
	}
}

// encodeRequest writes the netlink header and struct inet_diag_req_v2 of
// an exact lookup into b.
func encodeRequest(b []byte, seq uint32, proto int, sock, peer netip.AddrPort) {
	ne := binary.NativeEndian
	sockdiag.PutHeader(b, 0, seq)
	r := b[unix.NLMSG_HDRLEN:]
	s, p := sock.Addr().Unmap(), peer.Addr().Unmap()
	family := unix.AF_INET
	if !s.Is4() || !p.Is4() {
		family = unix.AF_INET6
		s, p = as16(sock.Addr()), as16(peer.Addr())
	}
	r[0] = byte(family)
	r[1] = byte(proto)
	ne.PutUint32(r[4:], ^uint32(0)) // idiag_states: any
	// struct inet_diag_sockid at r[8:]. TCP's lookup takes src as the
	// socket's own end; UDP's, "swapped for historical reasons" (the
	// kernel's words), as the sender of a datagram the socket would receive.
	src, dst := netip.AddrPortFrom(s, sock.Port()), netip.AddrPortFrom(p, peer.Port())
	if proto == unix.IPPROTO_UDP {
		src, dst = dst, src
	}
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], src.Port())
	binary.BigEndian.PutUint16(id[2:], dst.Port())
	copy(id[4:20], addrBytes(src.Addr()))
	copy(id[20:36], addrBytes(dst.Addr()))
	// idiag_if 0: any; idiag_cookie INET_DIAG_NOCOOKIE
	ne.PutUint32(id[40:], ^uint32(0))
	ne.PutUint32(id[44:], ^uint32(0))
}

func as16(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

func addrBytes(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// decodeReply reads the messages in b; done is false if none answers seq.
// Its own walk rather than sockdiag.Each: a callback makes the reply buffer
// escape, an allocation per lookup.
func decodeReply(b []byte, seq uint32) (uid uint32, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return 0, true, fmt.Errorf("sock_diag reply: bad message length %d", l)
		}
		typ, mseq, data := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[unix.NLMSG_HDRLEN:l]
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(data) < 4 {
				return 0, true, errors.New("sock_diag reply: short error message")
			}
			errno := unix.Errno(-int32(ne.Uint32(data)))
			if errno == unix.ENOENT {
				return 0, true, ErrNoSocket
			}
			return 0, true, fmt.Errorf("sock_diag: %w", errno)
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(data) < sockdiag.SizeofDiagMsg {
				return 0, true, errors.New("sock_diag reply: short inet_diag_msg")
			}
			// no inode: a time-wait socket or an orphan, whose uid reads 0
			if ne.Uint32(data[sockdiag.OffInode:]) == 0 {
				return 0, true, ErrClosed
			}
			return ne.Uint32(data[sockdiag.OffUID:]), true, nil
		}
	}
	return 0, false, nil
}

// PeerCred returns the uid of the process that connected the unix socket
// fd (SO_PEERCRED: taken at connect, still there after the peer closed).
func PeerCred(fd int) (uint32, error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return u.Uid, nil
}
