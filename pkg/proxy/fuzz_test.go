package proxy

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"github.com/brothaman/brothaman-go/pkg/ns"
)

// maxFuzzFDs bounds the real listening sockets one fuzz input makes.
const maxFuzzFDs = 4

// FuzzTargetMapping drives the whole LISTEN_FDNAMES → target path: the
// names systemd passes (fdpass.Environ.Parse), the --target flags as the
// flag package would feed them (targetFlags.Set, one per line of targets)
// and the TARGET argument, into inheritListeners on real listening
// sockets. It checks inheritListeners against a model of the documented
// rule (FileDescriptorName= first, then position among unnamed --target
// flags, then TARGET; every named --target must match a socket; no more
// positional flags than sockets), that every inherited descriptor is closed
// whatever the outcome (no fd leak on an error), and that errors are one
// line. Seeds live in testdata/fuzz/FuzzTargetMapping.
func FuzzTargetMapping(f *testing.F) {
	f.Add("tcp-5432:tcp-80", "tcp-80=127.0.0.1:8080", "127.0.0.1:5432")
	f.Add("a:b", "127.0.0.1:1\n/run/x.sock", "")
	f.Add("", "unknown=[::1]:1", "")
	f.Add("x:x", "x=127.0.0.1:1\nx=127.0.0.1:2", "")
	f.Add("a", "b=127.0.0.1:1", "127.0.0.1:2")
	f.Add("a:b:c", "1.2.3.4:5\n\n=x\ny=", "localhost:0")
	f.Fuzz(func(t *testing.T, fdNames, targets, def string) {
		n := 1
		if fdNames != "" {
			n = strings.Count(fdNames, ":") + 1
		}
		if n > maxFuzzFDs {
			return
		}
		pid := os.Getpid()
		n, names, err := fdpass.Environ{PID: strconv.Itoa(pid), FDs: strconv.Itoa(n), FDNames: fdNames}.Parse(pid)
		if err != nil {
			t.Fatalf("Parse of %d names %q: %v", n, fdNames, err)
		}
		var tf Targets
		for _, v := range strings.Split(targets, "\n") {
			if err := tf.Set(v); err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("Set(%q) error holds a newline: %q", v, err)
				}
				continue // the flag package would stop at this value; go on with the next
			}
		}
		fds := make([]fdpass.Inherited, n)
		for i := range fds {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err) // maxFuzzFDs sockets always fit: running out means a leak
			}
			file, err := ln.(*net.TCPListener).File()
			ln.Close()
			if err != nil {
				t.Fatal(err)
			}
			fds[i] = fdpass.Inherited{File: file, Name: names[i]}
		}
		out, err := Inherit(fds, tf, def, ProxyProtocols{})
		for _, l := range out {
			l.ln.Close()
		}
		for i, fd := range fds {
			if cerr := fd.File.Close(); !errors.Is(cerr, os.ErrClosed) {
				t.Errorf("inherited fd #%d still open after inheritListeners (err %v)", i, err)
			}
		}

		// the model
		var wantErr bool
		want := make([]string, n)
		used := map[string]bool{}
		for i, name := range names {
			addr := def
			if a, ok := tf.named[name]; ok {
				addr = a
				used[name] = true
			} else if i < len(tf.positional) {
				addr = tf.positional[i]
			}
			network := "tcp"
			if strings.HasPrefix(addr, "/") {
				network = "unix"
			}
			tg, perr := ns.ParseTarget(network, addr)
			if addr == "" || perr != nil {
				wantErr = true
			}
			want[i] = tg.String()
		}
		for name := range tf.named {
			if !used[name] {
				wantErr = true
			}
		}
		if len(tf.positional) > n {
			wantErr = true
		}

		if wantErr {
			if err == nil {
				t.Fatalf("names %q, targets %q, TARGET %q: accepted; want an error", names, targets, def)
			}
			// Names come from FileDescriptorName= (systemd allows printable
			// ASCII only) and from flags; a control character set by hand
			// reaches the message as is, and logrus escapes it in the log.
			if msg := err.Error(); msg == "" || printable(fdNames+targets+def) && strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one non-empty line", msg)
			}
			return
		}
		if err != nil {
			t.Fatalf("names %q, targets %q, TARGET %q: %v; want success", names, targets, def, err)
		}
		if len(out) != n {
			t.Fatalf("got %d listeners; want %d", len(out), n)
		}
		for i, l := range out {
			if l.name != names[i] || l.target.String() != want[i] {
				t.Errorf("listener #%d: got %q → %s; want %q → %s", i, l.name, l.target, names[i], want[i])
			}
		}
	})
}

func printable(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
