package main

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
	var tf targetFlags
	tf.Set("tcp-80=127.0.0.1:8080")
	ls, err := inheritListeners([]fdpass.Inherited{a, b}, tf, "127.0.0.1:5432")
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
	var tf targetFlags
	tf.Set("127.0.0.1:1")
	tf.Set("/run/postgresql/.s.PGSQL.5432")
	ls, err := inheritListeners(fds, tf, "")
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
	named := func(name string) targetFlags {
		var tf targetFlags
		tf.Set(name + "=127.0.0.1:1")
		return tf
	}
	tests := []struct {
		name    string
		fd      func(*testing.T) fdpass.Inherited
		targets targetFlags
		def     string
		want    string
	}{
		{"regular file", regular, targetFlags{}, "127.0.0.1:1", "inherited fd %d (file) is not a socket"},
		{"unix datagram", unixgram, targetFlags{}, "127.0.0.1:1", "inherited fd %d (dns) is a datagram socket that is not UDP"},
		{"connected", connected, targetFlags{}, "127.0.0.1:1", "inherited fd %d (conn) is not listening (Accept=yes in the socket unit? use Accept=no)"},
		{"no target", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, targetFlags{}, "",
			`no target for inherited fd %d (name "web"): give TARGET, --target web=HOST:PORT or one --target per socket`},
		{"unknown name", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, named("db"), "127.0.0.1:1",
			`--target db=…: no inherited socket is named "db" (names: web)`},
		{"bad target", func(t *testing.T) fdpass.Inherited { return inheritedTCP(t, "web") }, targetFlags{}, "example.org:80",
			`TARGET argument: target "example.org:80": host "example.org" is not an IP address or localhost`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.fd(t)
			fd := int(in.File.Fd())
			_, err := inheritListeners([]fdpass.Inherited{in}, tt.targets, tt.def)
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
	var tf targetFlags
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

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--container", "pg", "--exit-idle-time", "1h 2min", "-c", "10", "127.0.0.1:5432"})
	if err != nil {
		t.Fatal(err)
	}
	if o.container != "pg" || o.exitIdle != time.Hour+2*time.Minute || o.udpIdle != time.Minute || o.connectionsMax != 10 || o.target != "127.0.0.1:5432" {
		t.Errorf("parseFlags = %+v", o)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no target: give TARGET or --target"},
		{[]string{"--pid", "1", "--netns", "/x", "1.1.1.1:1"}, "give at most one of --container, --pid and --netns"},
		{[]string{"--connections-max", "0", "127.0.0.1:1"}, "--connections-max 0: want at least 1"},
		{[]string{"a", "b"}, "want at most one TARGET, got 2 arguments"},
		{[]string{"--exit-idle-time", "5fortnights", "127.0.0.1:1"}, `invalid argument "5fortnights" for "--exit-idle-time" flag: time span "5fortnights": unknown unit "fortnights" (want ns, us, ms, s, min, h, d, w) (see bro-proxy --help)`},
		{[]string{"-exit-idle-time", "5s", "127.0.0.1:1"}, `unknown shorthand flag: 'e' in -exit-idle-time (see bro-proxy --help)`},
	} {
		if _, err := parseFlags(tc.args); err == nil || err.Error() != tc.want {
			t.Errorf("parseFlags(%q) = %v; want %s", tc.args, err, tc.want)
		}
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
	var tf targetFlags
	tf.Set("other=127.0.0.1:1")
	_, err = inheritListeners([]fdpass.Inherited{{File: f, Name: "tcp-5432"}, inheritedTCP(t, "tcp-80")}, tf, "127.0.0.1:5432")
	want := `--target other=…: no inherited socket is named "other" (names: tcp-5432, tcp-80) (closed the clients queued: 1)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v; want %q", err, want)
	}
	if !closedSoon(c) {
		t.Error("the queued client was left open")
	}
}
