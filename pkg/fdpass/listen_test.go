package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEnvironParse(t *testing.T) {
	const pid = 1234
	tests := []struct {
		name      string
		env       Environ
		wantN     int
		wantNames []string
	}{
		{"one socket", Environ{PID: "1234", FDs: "1"}, 1, []string{"unknown"}},
		{"named", Environ{PID: "1234", FDs: "1", FDNames: "web"}, 1, []string{"web"}},
		{"two named", Environ{PID: "1234", FDs: "2", FDNames: "web:admin"}, 2, []string{"web", "admin"}},
		{"names default to unknown", Environ{PID: "1234", FDs: "3"}, 3, []string{"unknown", "unknown", "unknown"}},
		{"empty name kept", Environ{PID: "1234", FDs: "2", FDNames: "web:"}, 2, []string{"web", ""}},
		{"leading zero", Environ{PID: "1234", FDs: "01"}, 1, []string{"unknown"}},
		{"the most", Environ{PID: "1234", FDs: "1024"}, 1024, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, names, err := tt.env.Parse(pid)
			if err != nil {
				t.Fatalf("%+v.Parse(%d): %v", tt.env, pid, err)
			}
			if n != tt.wantN || len(names) != n {
				t.Fatalf("%+v.Parse(%d) = %d, %d names; want %d", tt.env, pid, n, len(names), tt.wantN)
			}
			if tt.wantNames != nil && !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("%+v.Parse(%d) names = %q; want %q", tt.env, pid, names, tt.wantNames)
			}
			for i, name := range names {
				if tt.wantNames == nil && name != "unknown" {
					t.Errorf("names[%d] = %q; want unknown", i, name)
				}
			}
		})
	}
}

func TestEnvironParseErrors(t *testing.T) {
	const pid = 1234
	tests := []struct {
		name string
		env  Environ
		want string
		is   error
	}{
		{"unset", Environ{}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"zero", Environ{PID: "1234", FDs: "0"}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"zero for another process", Environ{PID: "1", FDs: "0"}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"zero with leading zeros", Environ{PID: "1234", FDs: "00"}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"signed zero", Environ{PID: "1234", FDs: "-0"}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"only names", Environ{PID: "1234", FDNames: "web"}, ErrNoListenFDs.Error(), ErrNoListenFDs},
		{"pid unset", Environ{FDs: "1"}, "LISTEN_FDS=1 but LISTEN_PID is unset; want LISTEN_PID=1234", nil},
		{"pid of another process", Environ{PID: "999", FDs: "1"}, "LISTEN_PID=999 is not this process (pid 1234): the sockets were meant for another process", nil},
		{"pid of init", Environ{PID: "1", FDs: "1"}, "LISTEN_PID=1 is not this process (pid 1234): the sockets were meant for another process", nil},
		{"pid not a number", Environ{PID: "self", FDs: "1"}, "LISTEN_PID=self is not this process (pid 1234): the sockets were meant for another process", nil},
		{"pid with a space", Environ{PID: " 1234", FDs: "1"}, "LISTEN_PID= 1234 is not this process (pid 1234): the sockets were meant for another process", nil},
		{"count not a number", Environ{PID: "1234", FDs: "abc"}, `LISTEN_FDS="abc": want a number of descriptors in 0-1024`, nil},
		{"negative count", Environ{PID: "1234", FDs: "-1"}, `LISTEN_FDS="-1": want a number of descriptors in 0-1024`, nil},
		{"count too large", Environ{PID: "1234", FDs: "1025"}, `LISTEN_FDS="1025": want a number of descriptors in 0-1024`, nil},
		{"count overflows", Environ{PID: "1234", FDs: "99999999999999999999"}, `LISTEN_FDS="99999999999999999999": want a number of descriptors in 0-1024`, nil},
		{"count with a space", Environ{PID: "1234", FDs: "1 "}, `LISTEN_FDS="1 ": want a number of descriptors in 0-1024`, nil},
		{"fractional count", Environ{PID: "1234", FDs: "1.5"}, `LISTEN_FDS="1.5": want a number of descriptors in 0-1024`, nil},
		{"fewer names", Environ{PID: "1234", FDs: "2", FDNames: "web"}, `LISTEN_FDNAMES="web" has 1 names for LISTEN_FDS=2 descriptors`, nil},
		{"more names", Environ{PID: "1234", FDs: "1", FDNames: "web:admin"}, `LISTEN_FDNAMES="web:admin" has 2 names for LISTEN_FDS=1 descriptors`, nil},
		{"only separators", Environ{PID: "1234", FDs: "1", FDNames: ":"}, `LISTEN_FDNAMES=":" has 2 names for LISTEN_FDS=1 descriptors`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, names, err := tt.env.Parse(pid)
			if err == nil {
				t.Fatalf("%+v.Parse(%d) = %d, %q; want error %q", tt.env, pid, n, names, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("%+v.Parse(%d) error\n got %s\nwant %s", tt.env, pid, err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%+v.Parse(%d) error %v does not wrap %v", tt.env, pid, err, tt.is)
			}
			if n != 0 || names != nil {
				t.Errorf("%+v.Parse(%d) = %d, %q with an error; want 0, nil", tt.env, pid, n, names)
			}
		})
	}
}

func TestEnvironFromOS(t *testing.T) {
	t.Setenv("LISTEN_PID", "42")
	t.Setenv("LISTEN_FDS", "2")
	t.Setenv("LISTEN_FDNAMES", "a:b")
	if got, want := EnvironFromOS(), (Environ{PID: "42", FDs: "2", FDNames: "a:b"}); got != want {
		t.Errorf("EnvironFromOS() = %+v; want %+v", got, want)
	}
}

// Listen in this process only ever fails: on success it would adopt the test
// binary's fd 3. A success runs in a child, below.
func TestListenErrorsKeepEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  Environ
		want string
	}{
		{"nothing passed", Environ{}, ErrNoListenFDs.Error()},
		{"another process", Environ{PID: "1", FDs: "1", FDNames: "web"}, fmt.Sprintf("LISTEN_PID=1 is not this process (pid %d): the sockets were meant for another process", os.Getpid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", tt.env.PID)
			t.Setenv("LISTEN_FDS", tt.env.FDs)
			t.Setenv("LISTEN_FDNAMES", tt.env.FDNames)
			fds, err := Listen()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Listen() = %v, %v; want error %q", fds, err, tt.want)
			}
			if got := EnvironFromOS(); got != tt.env {
				t.Errorf("environment after a failed Listen = %+v; want it kept as %+v", got, tt.env)
			}
		})
	}
}

// childEnv tells the child (TestMain) what to expect: name=network:address pairs,
// separated by spaces.
const childEnv = "BRO_FDPASS_TEST_WANT"

func TestListenInChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fdNames string   // LISTEN_FDNAMES, unset if ""
		unix    []bool   // per socket: unix (true) or tcp (false)
		want    []string // names Listen returns
	}{
		{"one tcp socket, no names", "", []bool{false}, []string{"unknown"}},
		{"one named tcp socket", "web", []bool{false}, []string{"web"}},
		{"tcp and unix", "web:admin", []bool{false, true}, []string{"web", "admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []*os.File
			var want []string
			for i, isUnix := range tt.unix {
				var ln net.Listener
				var err error
				if isUnix {
					ln, err = net.Listen("unix", filepath.Join(t.TempDir(), "s"))
				} else {
					ln, err = net.Listen("tcp", "127.0.0.1:0")
				}
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				f, err := ln.(interface{ File() (*os.File, error) }).File()
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				files = append(files, f)
				want = append(want, fmt.Sprintf("%s=%s:%s", tt.want[i], ln.Addr().Network(), ln.Addr()))
			}
			// The shell's pid is the test binary's after exec: LISTEN_PID
			// names the process that reads it, as systemd sets it.
			cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0"`, exe)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LISTEN_FDS=" + strconv.Itoa(len(files)), childEnv + "=" + strings.Join(want, " ")}
			if tt.fdNames != "" {
				cmd.Env = append(cmd.Env, "LISTEN_FDNAMES="+tt.fdNames)
			}
			cmd.ExtraFiles = files
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "child ok") {
				t.Fatalf("child: %v\n%s", err, out)
			}
		})
	}
}

// TestMain makes the test binary, started by TestListenInChild with fds and
// LISTEN_* set, play the socket-activated child: it checks what Listen
// returns and exits.
func TestMain(m *testing.M) {
	if want, ok := os.LookupEnv(childEnv); ok {
		problems := listenChild(want)
		for _, p := range problems {
			fmt.Println("child:", p)
		}
		if len(problems) > 0 {
			os.Exit(1)
		}
		fmt.Println("child ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// listenChild is the child's side of TestListenInChild.
func listenChild(wantEnv string) (problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	want := strings.Fields(wantEnv)
	fds, err := Listen()
	if err != nil {
		errorf("Listen: %v", err)
		return
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, set := os.LookupEnv(v); set {
			errorf("%s=%q after Listen; want it unset", v, val)
		}
	}
	if len(fds) != len(want) {
		errorf("Listen returned %d descriptors; want %d", len(fds), len(want))
		return
	}
	for i, in := range fds {
		if got := int(in.File.Fd()); got != ListenFDsStart+i {
			errorf("descriptor %d is fd %d; want %d", i, got, ListenFDsStart+i)
		}
		flags, err := unix.FcntlInt(in.File.Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			errorf("fd %d flags %#x, %v; want FD_CLOEXEC", in.File.Fd(), flags, err)
		}
		if in.File.Name() != in.Name {
			errorf("file name %q; want %q", in.File.Name(), in.Name)
		}
		ln, err := net.FileListener(in.File)
		if err != nil {
			errorf("fd %d is not a listener: %v", in.File.Fd(), err)
			return
		}
		defer ln.Close()
		if got := fmt.Sprintf("%s=%s:%s", in.Name, ln.Addr().Network(), ln.Addr()); got != want[i] {
			errorf("descriptor %d: got %s; want %s", i, got, want[i])
		}
		// It accepts: the very socket the parent listens on.
		c, err := net.DialTimeout(ln.Addr().Network(), ln.Addr().String(), 5*time.Second)
		if err != nil {
			errorf("dial %s: %v", ln.Addr(), err)
			return
		}
		c.Close()
		ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Now().Add(5 * time.Second))
		a, err := ln.Accept()
		if err != nil {
			errorf("accept on %s: %v", ln.Addr(), err)
			return
		}
		a.Close()
	}
	return
}

func FuzzEnvironParse(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzEnvironParse.
	f.Add("1234", "1", "", 1234)
	f.Add("1234", "2", "web:admin", 1234)
	f.Add("999", "1", "web", 1234)
	f.Add("", "0", "", 1)
	f.Add("1", "-1", ":", 1)
	f.Fuzz(func(t *testing.T, pidEnv, fdsEnv, names string, pid int) {
		e := Environ{PID: pidEnv, FDs: fdsEnv, FDNames: names}
		n, got, err := e.Parse(pid)
		if err != nil {
			if n != 0 || got != nil {
				t.Fatalf("%+v.Parse(%d) = %d, %q with error %v", e, pid, n, got, err)
			}
			return
		}
		if n < 1 || n > maxListenFDs || len(got) != n {
			t.Fatalf("%+v.Parse(%d) = %d descriptors, %d names", e, pid, n, len(got))
		}
		if p, perr := strconv.Atoi(pidEnv); perr != nil || p != pid {
			t.Fatalf("%+v.Parse(%d) accepted LISTEN_PID of another process", e, pid)
		}
		if names != "" && strings.Join(got, ":") != names {
			t.Fatalf("%+v.Parse(%d) names %q; want LISTEN_FDNAMES split", e, pid, got)
		}
		if names == "" {
			for _, name := range got {
				if name != "unknown" {
					t.Fatalf("%+v.Parse(%d) default name %q; want unknown", e, pid, name)
				}
			}
		}
	})
}
