package proxy

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The PROXY protocol (haproxy.org, proxy-protocol.txt) tells the backend who
// the client is: bro-proxy writes one header at the start of each backend
// connection, then splices as usual. Version 1 is a text line, version 2 a
// binary block; both name the client's address and the address it connected
// to (the host socket's).

// proxyV2Sig starts every version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyHeader returns the header for a connection from src to dst.
// Addresses that are not TCP (a unix socket listener) are sent as UNKNOWN
// (v1) or LOCAL (v2), which tells the backend to use the connection's own.
func proxyHeader(version int, src, dst net.Addr) ([]byte, error) {
	s, sok := tcpAddrPort(src)
	d, dok := tcpAddrPort(dst)
	known := sok && dok
	if known && s.Addr().Is4() != d.Addr().Is4() {
		// one side IPv4, the other IPv6: send both as IPv6
		s = netip.AddrPortFrom(netip.AddrFrom16(s.Addr().As16()), s.Port())
		d = netip.AddrPortFrom(netip.AddrFrom16(d.Addr().As16()), d.Port())
	}
	switch version {
	case 1:
		if !known {
			return []byte("PROXY UNKNOWN\r\n"), nil
		}
		fam := "TCP4"
		if !s.Addr().Is4() {
			fam = "TCP6"
		}
		return []byte(fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, s.Addr(), d.Addr(), s.Port(), d.Port())), nil
	case 2:
		h := append([]byte(nil), proxyV2Sig...)
		if !known {
			return append(h, 0x20, 0x00, 0, 0), nil // LOCAL, AF_UNSPEC
		}
		if s.Addr().Is4() {
			h = append(h, 0x21, 0x11, 0, 12) // PROXY, TCP over IPv4
			a, b := s.Addr().As4(), d.Addr().As4()
			h = append(append(h, a[:]...), b[:]...)
		} else {
			h = append(h, 0x21, 0x21, 0, 36) // PROXY, TCP over IPv6
			a, b := s.Addr().As16(), d.Addr().As16()
			h = append(append(h, a[:]...), b[:]...)
		}
		h = binary.BigEndian.AppendUint16(h, s.Port())
		return binary.BigEndian.AppendUint16(h, d.Port()), nil
	}
	return nil, fmt.Errorf("PROXY protocol version %d: want 1 or 2", version)
}

func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := t.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// ProxyProtocols collects --proxy-protocol [NAME=]v1|v2.
type ProxyProtocols struct {
	all   int
	named map[string]int
}

func (f *ProxyProtocols) String() string { return "" }
func (f *ProxyProtocols) Type() string   { return "[NAME=]v1|v2" }

func (f *ProxyProtocols) Set(v string) error {
	name, ver, named := strings.Cut(v, "=")
	if !named {
		ver, name = v, ""
	}
	var n int
	switch ver {
	case "v1", "1":
		n = 1
	case "v2", "2":
		n = 2
	default:
		return fmt.Errorf("PROXY protocol %q: want v1 or v2, or NAME=v1|v2", v)
	}
	if !named {
		f.all = n
		return nil
	}
	if name == "" {
		return fmt.Errorf("PROXY protocol %q: empty socket name", v)
	}
	if f.named == nil {
		f.named = make(map[string]int)
	}
	f.named[name] = n
	return nil
}

// Version is the PROXY protocol Version for the socket named name (0: none).
func (f *ProxyProtocols) Version(name string) int {
	if n, ok := f.named[name]; ok {
		return n
	}
	return f.all
}
