package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/brothaman/brothaman-go/internal/rawsys"
	"golang.org/x/sys/unix"
)

// The options every relayed socket gets, and the addresses the log and the
// PROXY protocol name. The relay owns raw descriptors, not net.Conns, so
// what net would do for a TCPConn is done here.

// defaultClientKeepAlive is what Go's net package turns on for accepted TCP
// connections; bro-proxy did so before it accepted on its own, and keeps it
// so that a client that vanished is noticed.
const defaultClientKeepAlive = 15 * time.Second

// tuneSocket sets TCP_NODELAY (the relay writes what it reads at once:
// Nagle's algorithm would only delay small replies) and keepalive probes
// after idle (or def when idle is 0; none when both are 0), every idle,
// three times with an explicit idle and Linux's default count otherwise.
// Only for TCP sockets.
func tuneSocket(fd int, idle, def time.Duration) {
	rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	secs := int(idle / time.Second)
	if idle == 0 {
		secs = int(def / time.Second)
	}
	if secs <= 0 {
		return
	}
	rawsys.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
	rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
	if idle > 0 {
		rawsys.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3)
	}
}

// sockaddrAddr is sa as a net.Addr (a *net.TCPAddr, or a *net.UnixAddr).
func sockaddrAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		zone := ""
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return &net.UnixAddr{Name: "@", Net: "unix"} // an unnamed unix socket
}

// isTCP: sa is an IPv4 or IPv6 address (of a stream socket: TCP).
func isTCP(sa unix.Sockaddr) bool {
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		return true
	}
	return false
}

// addrPort is the IP address and port in sa; the zero AddrPort for a unix
// socket's address.
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// localAddr is the address the client connected to.
func localAddr(fd int) net.Addr {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return &net.UnixAddr{Net: "unix"}
	}
	return sockaddrAddr(sa)
}

// writeProxyHeader sends the PROXY protocol header on the fresh backend
// socket fd. The socket's send buffer is empty, so the header (at most 232
// bytes) goes in one write or not at all.
func writeProxyHeader(fd, version int, src, dst net.Addr) error {
	h, err := proxyHeader(version, src, dst)
	if err != nil {
		return err
	}
	n, err := unix.SendmsgN(fd, h, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if err != nil {
		return fmt.Errorf("write the PROXY protocol header: %w", err)
	}
	if n != len(h) {
		return fmt.Errorf("write the PROXY protocol header: %d of %d bytes written", n, len(h))
	}
	return nil
}
