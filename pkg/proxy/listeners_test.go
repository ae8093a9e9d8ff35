package proxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
)

func inheritedTCP(t *testing.T, name string) fdpass.Inherited {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fdpass.Inherited{File: f, Name: name}
}

func TestInheritListenersTargets(t *testing.T) {
	a, b := inheritedTCP(t, "tcp-5432"), inheritedTCP(t, "tcp-80")
	var tf Targets
	tf.Set("tcp-80=127.0.0.1:8080")
	ls, err := Inherit([]fdpass.Inherited{a, b}, tf, "127.0.0.1:5432", ProxyProtocols{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range ls {
			l.ln.Close()
		}
	}()
	if got := ls[0].target.String(); got != "tcp:127.0.0.1:5432" {
		t.Errorf("fd 0 target = %s; want tcp:127.0.0.1:5432 (the TARGET argument)", got)
	}
	if got := ls[1].target.String(); got != "tcp:127.0.0.1:8080" {
		t.Errorf("fd 1 target = %s; want tcp:127.0.0.1:8080 (named)", got)
	}
}

func TestInheritListenersPositional(t *testing.T) {
	fds := []fdpass.Inherited{inheritedTCP(t, "x"), inheritedTCP(t, "x")}
	var tf Targets
	tf.Set("127.0.0.1:1")
	tf.Set("/run/postgresql/.s.PGSQL.5432")
	ls, err := Inherit(fds, tf, "", ProxyProtocols{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		l.ln.Close()
	}
	if ls[0].target.String() != "tcp:127.0.0.1:1" || ls[1].target.String() != "unix:/run/postgresql/.s.PGSQL.5432" {
		t.Errorf("targets = %s, %s; want positional order", ls[0].target, ls[1].target)
	}
}

func TestInheritListenersRefusals(t *testing.T) {
	regular := func(t *testing.T) fdpass.Inherited {
		f, err := os.Create(filepath.Join(t.TempDir(), "file"))
		if err != nil {
			t.Fatal(err)
		}
		return fdpass.Inherited{File: f, Name: "file"}
	}
	unixgram := func(t *testing.T) fdpass.Inherited {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := c.File()
		c.Close()
		return fdpass.Inherited{File: f, Name: "dns"}
	}
	connected := func(t *testing.T) fdpass.Inherited {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := c.(*net.TCPConn).File()
		c.Close()
		return fdpass.Inherited{File: f, Name: "conn"}
	}
	named := func(name string) Targets {
		var tf Targets
		tf.Set(name + "=127.0.0.1:1")
		return tf
	}
	tests := []struct {
		name    string
		fd      func(*testing.T) fdpass.Inherited
		targets Targets
		def     string
		want    string
	}{
		{"regular file", regular, Targets{}, "127.0.0.1:1", "inherited fd %d (file) is not a socket"},
		{"unix datagram", unixgram, Targets{}, "127.0.0.1:1", "inherited fd %d (dns) is a datagram socket that is not UDP"},
		{"connected", connected, Targets{}, "127.0.0.1:1", "inherited fd %d (conn) is not listening (Accept=yes in the socket unit? use Accept=no)"},
		{"no target", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, Targets{}, "",
			`no target for inherited fd %d (name "web"): give TARGET, --target web=HOST:PORT or one --target per socket`},
		{"unknown name", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, named("db"), "127.0.0.1:1",
			`--target db=…: no inherited socket is named "db" (names: web)`},
		{"bad target", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, Targets{}, "example.org:80",
			`TARGET argument: target "example.org:80": host "example.org" is not an IP address or localhost`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.fd(t)
			fd := int(in.File.Fd())
			_, err := Inherit([]fdpass.Inherited{in}, tt.targets, tt.def, ProxyProtocols{})
			want := tt.want
			if containsVerb(want) {
				want = fmt.Sprintf(want, fd)
			}
			if err == nil || err.Error() != want {
				t.Fatalf("inheritListeners error = %v; want %s", err, want)
			}
		})
	}
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			return true
		}
	}
	return false
}

func TestTargetFlagErrors(t *testing.T) {
	var tf Targets
	for _, tc := range []struct{ in, want string }{
		{"", "empty target"},
		{"=1.2.3.4:5", `target "=1.2.3.4:5": want NAME=HOST:PORT or HOST:PORT`},
		{"a=", `target "a=": want NAME=HOST:PORT or HOST:PORT`},
	} {
		if err := tf.Set(tc.in); err == nil || err.Error() != tc.want {
			t.Errorf("Set(%q) = %v; want %s", tc.in, err, tc.want)
		}
	}
	tf.Set("a=127.0.0.1:1")
	if err := tf.Set("a=127.0.0.1:2"); err == nil || err.Error() != `target "a=127.0.0.1:2": name "a" given twice` {
		t.Errorf("duplicate name: %v", err)
	}
}

// TestInheritListenersErrorClosesQueued: bro-proxy exits when its sockets do
// not fit its command line; the clients already queued on them are closed
// first, or systemd would start it again for them at once.
func TestInheritListenersErrorClosesQueued(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // systemd's copy
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tf Targets
	tf.Set("other=127.0.0.1:1")
	_, err = Inherit([]fdpass.Inherited{{File: f, Name: "tcp-5432"}, inheritedTCP(t, "tcp-80")}, tf, "127.0.0.1:5432", ProxyProtocols{})
	want := `--target other=…: no inherited socket is named "other" (names: tcp-5432, tcp-80) (closed the clients queued: 1)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v; want %q", err, want)
	}
	if !closedSoon(c) {
		t.Error("the queued client was left open")
	}
}
