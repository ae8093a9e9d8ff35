package allow

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Guard decides, client by client, whether an allow list admits it. A
// client of this host is identified by the owner of its socket; any other
// only by its address. Whatever cannot be decided is refused.
type Guard struct {
	m    *Matcher
	diag *Diag
}

// diagSockets: lookups run in accept loops and UDP readers, one per
// listener; a few sockets let them run side by side.
const diagSockets = 4

// NewGuard returns the Guard of m, with its netlink sockets opened in the
// calling thread's network and user namespace (the host's, for bro-proxy).
func NewGuard(m *Matcher) (*Guard, error) {
	d, err := OpenDiag(diagSockets)
	if err != nil {
		return nil, err
	}
	return &Guard{m: m, diag: d}, nil
}

// Close closes the netlink sockets; no check may run any more. A nil
// Guard's Close does nothing.
func (g *Guard) Close() {
	if g != nil {
		g.diag.Close()
	}
}

// Rule is the allow list, canonical, for log lines.
func (g *Guard) Rule() string { return g.m.Value }

// Verdict is the decision on one client.
type Verdict struct {
	Allowed bool
	By      string // what admitted it: "owner", an entry, "subordinate uid of NAME"
	UID     int64  // the owner of the client's socket; -1 if not known
	// Reason says why a client was refused.
	Reason string
	// Gone: the client closed before it was looked up (refused, nothing to
	// tell it).
	Gone bool
	// Err is a failed lookup: the client is refused (fail closed).
	Err error
}

func refused(uid int64, reason string) Verdict { return Verdict{UID: uid, Reason: reason} }

// Stream decides on the accepted stream socket fd: a unix socket by
// SO_PEERCRED, a TCP one by its 4-tuple.
func (g *Guard) Stream(fd int) Verdict {
	peer, err := unix.Getpeername(fd)
	if err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return Verdict{UID: -1, Gone: true, Reason: "client closed before the check"}
		}
		return Verdict{UID: -1, Reason: "peer unknown", Err: fmt.Errorf("getpeername: %w", err)}
	}
	if _, ok := peer.(*unix.SockaddrUnix); ok {
		uid, err := PeerCred(fd)
		if err != nil {
			return Verdict{UID: -1, Reason: "peer unknown", Err: err}
		}
		return g.uid(uid)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return Verdict{UID: -1, Reason: "local address unknown", Err: fmt.Errorf("getsockname: %w", err)}
	}
	return g.inet(unix.IPPROTO_TCP, addrPort(local), addrPort(peer))
}

// Datagram decides on the first datagram of a UDP flow from client to the
// socket bound to listener. A listener bound to a wildcard address does not
// know which of its addresses the client sent to; a client of this host
// sends from the address it sends to (the kernel's choice for a local
// destination), so the client's own address stands in for it. A client
// that bound or connected otherwise is not found, and refused.
func (g *Guard) Datagram(listener, client netip.AddrPort) Verdict {
	if listener.Addr().IsUnspecified() {
		listener = netip.AddrPortFrom(client.Addr(), listener.Port())
	}
	return g.inet(unix.IPPROTO_UDP, listener, client)
}

func (g *Guard) uid(uid uint32) Verdict {
	if by, ok := g.m.UID(uid); ok {
		return Verdict{Allowed: true, By: by, UID: int64(uid)}
	}
	return refused(int64(uid), fmt.Sprintf("uid %d is not allowed by %s=%s", uid, Key, g.m.Value))
}

// inet decides on a TCP or UDP client: its address first (no lookup), then
// the owner of its socket on this host.
func (g *Guard) inet(proto int, server, client netip.AddrPort) Verdict {
	if by, ok := g.m.Addr(client.Addr()); ok {
		return Verdict{Allowed: true, By: by, UID: -1}
	}
	uid, err := g.diag.Owner(proto, client, server)
	switch {
	case err == nil:
		return g.uid(uid)
	case errors.Is(err, ErrClosed):
		return Verdict{UID: -1, Gone: true, Reason: "client closed before the check"}
	case errors.Is(err, ErrNoSocket):
		if isHostAddr(client.Addr()) {
			return Verdict{UID: -1, Gone: true, Reason: "client closed before the check"}
		}
		return refused(-1, fmt.Sprintf("address %s is not allowed by %s=%s", client.Addr().Unmap(), Key, g.m.Value))
	}
	return Verdict{UID: -1, Reason: "owner of the client's socket unknown", Err: err}
}

// isHostAddr reports whether a is an address of this network namespace
// (only asked when a client's socket was not found: rare).
func isHostAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // unknown: the "closed" answer refuses all the same
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
