package rawsys

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func listen(t *testing.T, domain int, sa unix.Sockaddr) (int, unix.Sockaddr) {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, local
}

func socket(t *testing.T, domain int) int {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// The raw conversions agree with x/sys's on real loopback connections,
// both families: what Connect sent is where the connection went, and what
// Accept4 parsed is what getpeername says.
func TestConnectAccept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		domain int
		sa     unix.Sockaddr
	}{
		{"inet4", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}},
		{"inet6", unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lfd, addr := listen(t, tc.domain, tc.sa)
			if _, _, err := Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); !errors.Is(err, unix.EAGAIN) {
				t.Fatalf("accept on an empty queue: %v, want EAGAIN", err)
			}
			cfd := socket(t, tc.domain)
			if err := Connect(cfd, addr); err != nil && !errors.Is(err, unix.EINPROGRESS) {
				t.Fatalf("connect %v: %v", addr, err)
			}
			afd, peer, err := Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(afd)
			want, err := unix.Getpeername(afd)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(peer, want) {
				t.Errorf("Accept4 peer %#v, getpeername %#v", peer, want)
			}
			if local, _ := unix.Getsockname(cfd); !reflect.DeepEqual(local, want) {
				t.Errorf("client's own address %#v, the accepted peer %#v", local, want)
			}
			if v, err := GetsockoptInt(cfd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
				t.Errorf("SO_ERROR = %d, %v", v, err)
			}
			if !Connected(cfd) {
				t.Error("Connected = false for an accepted connection")
			}
			if err := SetsockoptInt(afd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
				t.Fatal(err)
			}
			if v, err := unix.GetsockoptInt(afd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v != 1 {
				t.Errorf("TCP_NODELAY after SetsockoptInt = %d, %v", v, err)
			}
			if n, err := Send(cfd, []byte("ping")); n != 4 || err != nil {
				t.Fatalf("Send = %d, %v", n, err)
			}
			if err := Shutdown(cfd, unix.SHUT_WR); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 16)
			if n, err := Read(afd, b); n != 4 || err != nil || string(b[:n]) != "ping" {
				t.Fatalf("Read = %d %q, %v", n, b[:n], err)
			}
			if n, err := Read(afd, b); n != 0 || err != nil {
				t.Fatalf("Read after the peer's shutdown = %d, %v; want EOF", n, err)
			}
		})
	}
}

// A refused connect is an error, and a socket that never connected has no
// peer.
func TestConnectRefused(t *testing.T) {
	lfd, addr := listen(t, unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	unix.Close(lfd) // the port is free again, nothing listens
	fd := socket(t, unix.AF_INET)
	err := Connect(fd, addr)
	if errors.Is(err, unix.EINPROGRESS) {
		v, _ := GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		err = unix.Errno(v)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("connect to a closed port: %v, want ECONNREFUSED", err)
	}
	if Connected(fd) {
		t.Error("Connected = true for a refused socket")
	}
	if err := Connect(fd, &unix.SockaddrUnix{Name: "/x"}); !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Errorf("Connect to a unix address: %v, want EAFNOSUPPORT", err)
	}
	if err := Connect(fd, &unix.SockaddrInet4{Port: 70000}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Connect to port 70000: %v, want EINVAL", err)
	}
	if err := Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := Close(fd); !errors.Is(err, unix.EBADF) {
		t.Errorf("second Close: %v, want EBADF", err)
	}
}

// Unix stream listeners: a path, an abstract name, and the unnamed peers
// they accept, parsed as x/sys parses them.
func TestAcceptUnix(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "s"), "@bro-rawsys-" + filepath.Base(os.Args[0])} {
		lfd, addr := listen(t, unix.AF_UNIX, &unix.SockaddrUnix{Name: name})
		if got := addr.(*unix.SockaddrUnix).Name; got != name {
			t.Fatalf("listening at %q, getsockname %q", name, got)
		}
		cfd := socket(t, unix.AF_UNIX)
		if err := unix.Connect(cfd, addr); err != nil {
			t.Fatal(err)
		}
		afd, peer, err := Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(afd)
		if got := peer.(*unix.SockaddrUnix).Name; got != "" {
			t.Errorf("unnamed peer parsed as %q", got)
		}
		// a named peer: the raw parse of the listener's own address
		var rsa unix.RawSockaddrAny
		p := (*unix.RawSockaddrUnix)(unsafe.Pointer(&rsa))
		p.Family = unix.AF_UNIX
		src := name
		if src[0] == '@' {
			src = "\x00" + src[1:]
		}
		for i := range len(src) {
			p.Path[i] = int8(src[i])
		}
		n := uint32(2 + len(src))
		if src[0] != 0 {
			n++ // a path's length counts its NUL
		}
		sa, err := sockaddr(&rsa, n)
		if err != nil || sa.(*unix.SockaddrUnix).Name != name {
			t.Errorf("sockaddr(%q) = %#v, %v", name, sa, err)
		}
	}
}
