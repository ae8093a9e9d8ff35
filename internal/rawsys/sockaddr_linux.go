package rawsys

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys converts between unix.Sockaddr and the kernel's structures only
// inside its own wrappers; these are the conversions for the families the
// connection path meets (what a stream listener accepts, what a backend is
// dialled at).

// sockaddr converts the n bytes the kernel filled in rsa.
func sockaddr(rsa *unix.RawSockaddrAny, n uint32) (unix.Sockaddr, error) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		sa := &unix.SockaddrInet4{Port: int(swap(p.Port)), Addr: p.Addr}
		return sa, nil
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		sa := &unix.SockaddrInet6{Port: int(swap(p.Port)), ZoneId: p.Scope_id, Addr: p.Addr}
		return sa, nil
	case unix.AF_UNIX:
		p := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
		// n counts the family (2 bytes) and the path, with or without
		// its terminating NUL; an unnamed peer is the family alone
		path := make([]byte, 0, len(p.Path))
		for i := 0; i < int(n)-2 && i < len(p.Path); i++ {
			path = append(path, byte(p.Path[i]))
		}
		if len(path) > 0 && path[0] == 0 {
			path[0] = '@' // abstract, as x/sys and net write it
		} else {
			for i, c := range path {
				if c == 0 {
					path = path[:i]
					break
				}
			}
		}
		return &unix.SockaddrUnix{Name: string(path)}, nil
	}
	return nil, fmt.Errorf("address family %d: %w", rsa.Addr.Family, unix.EAFNOSUPPORT)
}

// rawSockaddr fills rsa from sa and returns its length.
func rawSockaddr(sa unix.Sockaddr, rsa *unix.RawSockaddrAny) (uint32, error) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		if a.Port < 0 || a.Port > 0xffff {
			return 0, unix.EINVAL
		}
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p.Family = unix.AF_INET
		p.Port = swap(uint16(a.Port))
		p.Addr = a.Addr
		return unix.SizeofSockaddrInet4, nil
	case *unix.SockaddrInet6:
		if a.Port < 0 || a.Port > 0xffff {
			return 0, unix.EINVAL
		}
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p.Family = unix.AF_INET6
		p.Port = swap(uint16(a.Port))
		p.Scope_id = a.ZoneId
		p.Addr = a.Addr
		return unix.SizeofSockaddrInet6, nil
	}
	return 0, fmt.Errorf("address %T: %w", sa, unix.EAFNOSUPPORT)
}

// swap converts a port between network and host byte order, both ways,
// on any host: it reads v's bytes in memory order.
func swap(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return uint16(b[0])<<8 | uint16(b[1])
}
