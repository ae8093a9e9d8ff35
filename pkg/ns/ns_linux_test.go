package ns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/brothaman/brothaman-go/pkg/ns/nsenter" // the helper's constructor, as in bro-proxy
	"golang.org/x/sys/unix"
)

// TestMain serves as the namespace helper when Enter re-executes the test
// binary, as bro-proxy's main does.
func TestMain(m *testing.M) {
	if IsHelper() {
		RunHelper() // never returns
	}
	os.Exit(m.Run())
}

func TestParseTarget(t *testing.T) {
	tests := []struct{ network, addr, want, err string }{
		{"tcp", "127.0.0.1:5432", "tcp:127.0.0.1:5432", ""},
		{"tcp", "localhost:80", "tcp:127.0.0.1:80", ""},
		{"tcp", "[::1]:80", "tcp:[::1]:80", ""},
		{"udp", "127.0.0.1:53", "udp:127.0.0.1:53", ""},
		{"unix", "/run/x.sock", "unix:/run/x.sock", ""},
		{"tcp", "db.example:5432", "", `target "db.example:5432": host "db.example" is not an IP address or localhost`},
		{"tcp", "127.0.0.1:0", "", `target "127.0.0.1:0": port "0" is not in 1-65535`},
		{"tcp", "127.0.0.1", "", `target "127.0.0.1": want HOST:PORT (IPv6 in brackets)`},
		{"unix", "rel.sock", "", `target "rel.sock": want an absolute socket path`},
		{"sctp", "1.2.3.4:5", "", `target network "sctp": want tcp, udp or unix`},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr, func(t *testing.T) {
			got, err := ParseTarget(tt.network, tt.addr)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseTarget error = %v; want %s", err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseTarget = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestOpenRefusesNonNamespace(t *testing.T) {
	_, err := Open("/proc/self/stat")
	if err == nil || err.Error() != "namespace /proc/self/stat: not a namespace file (not on nsfs)" {
		t.Fatalf("Open(/proc/self/stat) = %v", err)
	}
}

// newNetNS makes a throwaway network namespace with loopback up and a TCP
// echo listener on 127.0.0.1:port inside it. Root only.
func newNetNS(t *testing.T) (*Handle, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create a network namespace: run the Go tests as root, as make check and CI do")
	}
	type result struct {
		h   *Handle
		ln  net.Listener
		err error
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with the namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			res <- result{err: err}
			return
		}
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			res <- result{err: fmt.Errorf("ip link set lo up: %v: %s", err, out)}
			return
		}
		h, err := Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			res <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		res <- result{h, ln, err}
		select {} // keep the thread (and the listener's namespace) alive
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { r.ln.Close(); r.h.Close() })
	return r.h, r.ln.Addr().(*net.TCPAddr).Port
}

func TestEnterDialsInsideNamespace(t *testing.T) {
	h, port := newNetNS(t)
	s, err := Enter(h)
	if err != nil {
		t.Fatalf("Enter: %v", err)
	}
	defer s.Close()
	target, _ := ParseTarget("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s, target)
	if err != nil {
		t.Fatalf("Dial inside: %v", err)
	}
	defer c.Close()
	if _, ok := c.(*net.TCPConn); !ok {
		t.Fatalf("Dial returned %T; want *net.TCPConn (splice needs it)", c)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v; want ping", buf, err)
	}
	// A port nobody listens on inside the namespace is refused, not hung.
	closed, _ := ParseTarget("tcp", "127.0.0.1:1")
	if _, err := Dial(ctx, s, closed); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("Dial to a closed port = %v; want ECONNREFUSED", err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	h, port := newNetNS(t)
	s, err := Enter(h)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	target, _ := ParseTarget("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, s, target); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context = %v; want context.Canceled", err)
	}
}

func TestPrefetchGivesReadySocketsOfTheNamespace(t *testing.T) {
	h, port := newNetNS(t)
	s, err := Enter(h)
	if err != nil {
		t.Fatal(err)
	}
	p := Prefetch(s, unix.AF_INET, unix.SOCK_STREAM, 4)
	target, _ := ParseTarget("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ { // more than the pool holds: refills as it goes
		c, err := Dial(ctx, p, target)
		if err != nil {
			t.Fatalf("dial %d through the prefetched pool: %v", i, err)
		}
		c.Write([]byte("x"))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		c.Close()
	}
	before := countFDs(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if after := countFDs(t); after >= before {
		t.Errorf("descriptors after Close = %d; want fewer than %d (the ready sockets closed)", after, before)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// userNSSleeper runs `sleep 60` in a new user, network and mount namespace
// created by uid (as root: any uid), and returns its network and mount
// namespaces once the process is sleep. Root only.
func userNSSleeper(t *testing.T, uid uint32) (netns, mntns *Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create namespaces as another uid: run the Go tests as root, as make check and CI do")
	}
	cmd := exec.Command("unshare", "--user", "--net", "--mount", "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if err == nil && string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not become sleep within 5s (comm %q, %v)", cmd.Args, comm, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h, err := OpenNetNSOfPID(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	m, err := Open(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return h, m
}

func TestEnterRefusesAnotherUsersNamespace(t *testing.T) {
	h, hm := userNSSleeper(t, 65534)
	m, err := Open(fmt.Sprintf("/proc/%d/ns/mnt", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	notOwner := fmt.Sprintf("network namespace %s belongs to a user namespace of uid 65534, not 0: namespace is not owned by this user", h)
	tests := []struct {
		name  string
		enter func() (Sockets, error)
		want  string
	}{
		{"Enter", func() (Sockets, error) { return Enter(h) }, notOwner},
		{"EnterMount", func() (Sockets, error) { return EnterMount(h, hm) }, notOwner},
		{"EnterMount of another user namespace's mount namespace", func() (Sockets, error) { return EnterMount(h, m) },
			fmt.Sprintf("mount namespace %s and network namespace %s belong to different user namespaces: namespace is not owned by this user", m, h)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.enter()
			if err == nil {
				s.Close()
				t.Fatalf("entered a namespace of uid 65534's user namespace; want %s", tt.want)
			}
			if !errors.Is(err, ErrNotOwner) || err.Error() != tt.want {
				t.Fatalf("got %v; want %s (wrapping ErrNotOwner)", err, tt.want)
			}
		})
	}
}

// childUserNS runs `sleep 60` as root in a new user namespace (root's own
// child, root mapped to root) and network namespace with loopback up, and
// returns its network namespace: what a rootless container is to its user.
// Root only.
func childUserNS(t testing.TB) *Handle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create namespaces: run the Go tests as root, as make check and CI do")
	}
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--net", "sh", "-c", "ip link set lo up && exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if err == nil && string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not become sleep within 5s (comm %q, %v)", cmd.Args, comm, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h, err := OpenNetNSOfPID(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// socketNetNS is the network namespace a socket was made in (SIOCGSKNS).
func socketNetNS(t *testing.T, fd int) *Handle {
	t.Helper()
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		t.Fatalf("SIOCGSKNS: %v", err)
	}
	h, err := fromFile(os.NewFile(uintptr(nsfd), "netns"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHelperEntersChildUserNamespace goes the rootless way: the namespace
// belongs to a child user namespace, so a helper re-executed from this test
// binary joins both (the constructor of package nsenter) and passes sockets
// back. A listener made through it and a connection dialled through it meet
// inside that namespace.
func TestHelperEntersChildUserNamespace(t *testing.T) {
	h := childUserNS(t)
	s, err := Enter(h)
	if err != nil {
		t.Fatalf("Enter: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*helper); !ok {
		t.Fatalf("Enter of a child user namespace's netns gave %T; want the helper", s)
	}
	fd, err := s.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("Socket through the helper: %v", err)
	}
	in := socketNetNS(t, fd)
	defer in.Close()
	if !in.Equal(h) {
		t.Fatalf("helper's socket is in %s; want %s", in, h)
	}
	mustDo(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	mustDo(t, unix.Listen(fd, 1))
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	target, _ := ParseTarget("tcp", ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s, target)
	if err != nil {
		t.Fatalf("Dial through the helper: %v", err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v; want ping", buf, err)
	}
}

// TestHelperSocketsBatch: one request brings several sockets, each of the
// helper's namespace; a count beyond maxBatch brings maxBatch.
func TestHelperSocketsBatch(t *testing.T) {
	h := childUserNS(t)
	s, err := Enter(h)
	if err != nil {
		t.Fatalf("Enter: %v", err)
	}
	defer s.Close()
	hp, ok := s.(*helper)
	if !ok {
		t.Fatalf("Enter of a child user namespace's netns gave %T; want the helper", s)
	}
	for _, tc := range []struct{ ask, want int }{{8, 8}, {1, 1}, {maxBatch + 5, maxBatch}} {
		fds, err := hp.Sockets(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0, tc.ask)
		if err != nil {
			t.Fatalf("Sockets(%d): %v", tc.ask, err)
		}
		if len(fds) != tc.want {
			t.Errorf("Sockets(%d): %d descriptors; want %d", tc.ask, len(fds), tc.want)
		}
		for _, fd := range fds {
			in := socketNetNS(t, fd)
			if !in.Equal(h) {
				t.Errorf("batch socket in %s; want %s", in, h)
			}
			in.Close()
			unix.Close(fd)
		}
	}
	if _, err := hp.Sockets(unix.AF_PACKET, unix.SOCK_STREAM, 0, 2); err == nil {
		t.Error("Sockets(AF_PACKET): nil error; want the refusal of checkSocketArgs")
	}
	// The helper checks on its own (nsenter_linux.c), past the parent's
	// checkSocketArgs: a raw or netlink socket is refused with EINVAL, and
	// an errno comes back as that errno.
	for _, tc := range []struct {
		domain, typ int
		path        string
		want        syscall.Errno
	}{
		{unix.AF_NETLINK, unix.SOCK_DGRAM, "", unix.EINVAL},
		{unix.AF_INET, unix.SOCK_RAW, "", unix.EINVAL},
		{reqConnectUnix, 0, "/nonexistent/bro.sock", unix.ENOENT},
		{reqConnectUnix, 0, strings.Repeat("x", 108), unix.EINVAL},
	} {
		fd, err := hp.request(tc.domain, tc.typ, 0, tc.path)
		if !errors.Is(err, tc.want) {
			if err == nil {
				unix.Close(fd)
			}
			t.Errorf("request(%d, %d, %q): %v; want %v", tc.domain, tc.typ, tc.path, err, tc.want)
		}
	}
}

// TestHelperEntersMountNamespace is EnterMount of a namespace of the
// caller's own user namespace: a helper joins network and mount namespace
// (here the test's own mount namespace) and connects a unix path there.
func TestHelperEntersMountNamespace(t *testing.T) {
	h, _ := newNetNS(t)
	m, err := Open("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := EnterMount(h, m)
	if err != nil {
		t.Fatalf("EnterMount: %v", err)
	}
	defer s.Close()
	fd, err := s.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := socketNetNS(t, fd)
	unix.Close(fd)
	defer in.Close()
	if !in.Equal(h) {
		t.Fatalf("helper's socket is in %s; want %s", in, h)
	}
	ufd, err := s.ConnectUnix(path)
	if err != nil {
		t.Fatalf("ConnectUnix(%s) through the helper: %v", path, err)
	}
	unix.Close(ufd)
}

// TestHelperWithoutConstructorIsRefused builds a binary that starts helpers
// but does not link package nsenter: its helper never leaves the parent's
// namespaces, and Enter must refuse it rather than make sockets there.
func TestHelperWithoutConstructorIsRefused(t *testing.T) {
	h := childUserNS(t)
	bin := filepath.Join(t.TempDir(), "nonsenter")
	// go test puts GOROOT/bin first on the PATH of the test binary.
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/nonsenter").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/nonsenter: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "list", "-deps", "./testdata/nonsenter").Output(); err != nil || strings.Contains(string(out), "pkg/ns/nsenter") {
		t.Fatalf("testdata/nonsenter links nsenter (or go list failed: %v)", err)
	}
	owner, err := h.Owner()
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	self, err := Open("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	cmd := exec.Command(bin, "/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{h.File()} // fd 3 in the child
	out, err := cmd.CombinedOutput()
	// The user namespace is checked first: the helper never left ours.
	want := "start namespace helper: helper (pid "
	wantEnd := fmt.Sprintf(" is in user namespace %s, not %s: %s\n", self, owner, ErrNoConstructor)
	if got := string(out); err == nil || !strings.HasPrefix(got, want) || !strings.HasSuffix(got, wantEnd) || strings.Count(got, "\n") != 1 {
		t.Fatalf("nonsenter: %v, output:\n%s\nwant one line starting %q and ending %q", err, got, want, wantEnd)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHelperSocket and BenchmarkHelperSocketsBatch16: the cost per
// socket of a rootless backend's socket, one round trip to the helper each,
// and sixteen to a round trip (how the prefetch pool refills).
func BenchmarkHelperSocket(b *testing.B) {
	hp := benchHelper(b)
	for b.Loop() {
		fd, err := hp.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}

func BenchmarkHelperSocketsBatch16(b *testing.B) {
	hp := benchHelper(b)
	for b.Loop() {
		fds, err := hp.Sockets(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0, 16)
		if err != nil {
			b.Fatal(err)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*16), "ns/socket")
}

func benchHelper(b *testing.B) *helper {
	b.Helper()
	h := childUserNS(b)
	s, err := Enter(h)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	hp, ok := s.(*helper)
	if !ok {
		b.Fatalf("Enter gave %T; want the helper", s)
	}
	return hp
}
