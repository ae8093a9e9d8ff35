package proxy

import (
	"bytes"
	"net"
	"testing"
)

func TestProxyHeader(t *testing.T) {
	v4src := &net.TCPAddr{IP: net.ParseIP("127.0.0.9"), Port: 40000}
	v4dst := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5432}
	v6src := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 40001}
	unixAddr := &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}
	sig := string(proxyV2Sig)
	tests := []struct {
		name     string
		version  int
		src, dst net.Addr
		want     string
	}{
		{"v1 tcp4", 1, v4src, v4dst, "PROXY TCP4 127.0.0.9 127.0.0.1 40000 5432\r\n"},
		{"v1 mixed families become tcp6", 1, v6src, v4dst, "PROXY TCP6 ::1 ::ffff:127.0.0.1 40001 5432\r\n"},
		{"v1 unix", 1, unixAddr, unixAddr, "PROXY UNKNOWN\r\n"},
		{"v2 tcp4", 2, v4src, v4dst, sig + "\x21\x11\x00\x0c\x7f\x00\x00\x09\x7f\x00\x00\x01\x9c\x40\x15\x38"},
		{"v2 unix is LOCAL", 2, unixAddr, unixAddr, sig + "\x20\x00\x00\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proxyHeader(tt.version, tt.src, tt.dst)
			if err != nil || !bytes.Equal(got, []byte(tt.want)) {
				t.Fatalf("proxyHeader = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	h, _ := proxyHeader(2, v6src, &net.TCPAddr{IP: net.ParseIP("::1"), Port: 80})
	if len(h) != 16+36 || h[13] != 0x21 {
		t.Errorf("v2 tcp6 header: %d bytes, family %#x; want 52 bytes, 0x21", len(h), h[13])
	}
	if _, err := proxyHeader(3, v4src, v4dst); err == nil || err.Error() != "PROXY protocol version 3: want 1 or 2" {
		t.Errorf("version 3: %v", err)
	}
}

func TestProxyProtoFlags(t *testing.T) {
	var f ProxyProtocols
	for _, v := range []string{"v1", "web=v2"} {
		if err := f.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if f.Version("web") != 2 || f.Version("db") != 1 {
		t.Errorf("versions = web %d, db %d; want 2, 1", f.Version("web"), f.Version("db"))
	}
	for _, bad := range []struct{ in, want string }{
		{"v3", `PROXY protocol "v3": want v1 or v2, or NAME=v1|v2`},
		{"=v1", `PROXY protocol "=v1": empty socket name`},
	} {
		if err := f.Set(bad.in); err == nil || err.Error() != bad.want {
			t.Errorf("Set(%q) = %v; want %s", bad.in, err, bad.want)
		}
	}
}
