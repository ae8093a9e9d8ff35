package handoff

// The target of the handler tests: this test binary, re-executed with
// childEnv set, installs a real seccomp filter with a listener, sends the
// listener to the test over fd 3 and then makes the system calls a server
// would. No Podman, no runc, no privilege: the filter needs only
// no_new_privs, and the optional namespaces are a user namespace the test
// owns with a network namespace in it, as a rootless container with
// Network=none has.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"golang.org/x/sys/unix"
)

const childEnv = "BRO_HANDOFF_TEST_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(childMain(cfg))
	}
	os.Exit(m.Run())
}

// childConfig is what the child does, in this order.
type childConfig struct {
	OwnNetns bool       // the child runs in its own user and network namespace: bring lo up
	Notify   []string   // system calls the filter notifies: "bind", "listen"
	Binds    []bindSpec // one socket each, bound in order
	Backlog  int        // listen(fd, Backlog) on each socket whose bind succeeded
	Accept   int        // index in Binds of the socket to accept one connection on; -1 for none
	WaitGo   bool       // wait for a message from the test before binding
	Retry    bool       // accept: poll without a timeout, and retry an accept that fails with EAGAIN
}

type bindSpec struct {
	Addr    string // 0.0.0.0, ::, 127.0.0.1, ::1
	Port    int
	Cloexec bool // create the socket with SOCK_CLOEXEC
	UDP     bool // a datagram socket, not a stream socket
}

// childReport is the child's first message after the listener.
type childReport struct {
	Pid, Tid int
	Binds    []bindResult
	Err      string
}

type bindResult struct {
	Errno       syscall.Errno // of bind()
	Port        int           // getsockname after bind
	Dev, Ino    uint64        // fstat of the descriptor after bind
	Cloexec     bool          // FD_CLOEXEC after bind
	ListenErrno syscall.Errno
}

// acceptReport is the child's second message, when it accepted.
type acceptReport struct {
	Again int    // accepts that failed with EAGAIN first (Retry)
	Peer  string // getpeername of the accepted connection
	Read  string
	Err   string
}

func childMain(cfgJSON string) int {
	f := os.NewFile(3, "parent")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	conn := c.(*net.UnixConn)
	fail := func(err error) int {
		b, _ := json.Marshal(childReport{Err: err.Error()})
		conn.Write(b)
		return 1
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fail(err)
	}
	if cfg.OwnNetns {
		if err := loopbackUp(); err != nil {
			return fail(err)
		}
	}
	lfd, err := installFilter(cfg.Notify)
	if err != nil {
		return fail(err)
	}
	if err := fdpass.Send(conn, []byte("listener"), lfd); err != nil {
		return fail(err)
	}
	unix.Close(lfd)
	if cfg.WaitGo {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 16)); err != nil {
			return fail(err)
		}
	}

	rep := childReport{Pid: unix.Getpid()}
	var fds []int
	// A server's bind() may come from any of its threads; the notification
	// then names a thread that is not the process, as pidfd_open needs.
	onOtherThread(func() {
		rep.Tid = unix.Gettid()
		for _, b := range cfg.Binds {
			fd, r := bindOne(b)
			fds = append(fds, fd)
			rep.Binds = append(rep.Binds, r)
		}
		for i, fd := range fds {
			if rep.Binds[i].Errno == 0 && !cfg.Binds[i].UDP {
				rep.Binds[i].ListenErrno = errnoOf(unix.Listen(fd, cfg.Backlog))
			}
		}
	})
	b, _ := json.Marshal(rep)
	if _, err := conn.Write(b); err != nil {
		return 1
	}
	if cfg.Accept >= 0 {
		serve := acceptOne
		if cfg.Retry {
			serve = acceptRetry
		}
		if cfg.Binds[cfg.Accept].UDP {
			serve = echoDatagram
		}
		b, _ := json.Marshal(serve(fds[cfg.Accept]))
		if _, err := conn.Write(b); err != nil {
			return 1
		}
	}
	// Hold the sockets until the test closes its end.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			return 0
		}
	}
}

func bindOne(b bindSpec) (int, bindResult) {
	var r bindResult
	ip := netip.MustParseAddr(b.Addr)
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: b.Port, Addr: ip.As16()})
	if ip.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: b.Port, Addr: ip.As4()}
	}
	typ := unix.SOCK_STREAM
	if b.UDP {
		typ = unix.SOCK_DGRAM
	}
	if b.Cloexec {
		typ |= unix.SOCK_CLOEXEC
	}
	fd, err := unix.Socket(family, typ, 0)
	if err != nil {
		r.Errno = errnoOf(err)
		return -1, r
	}
	if r.Errno = errnoOf(unix.Bind(fd, sa)); r.Errno != 0 {
		return fd, r
	}
	switch a := must(unix.Getsockname(fd)).(type) {
	case *unix.SockaddrInet4:
		r.Port = a.Port
	case *unix.SockaddrInet6:
		r.Port = a.Port
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		r.Dev, r.Ino = st.Dev, st.Ino
	}
	flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	r.Cloexec = flags&unix.FD_CLOEXEC != 0
	return fd, r
}

// acceptOne accepts one connection the way a simple server does (poll, then
// accept: the host socket may be non-blocking, its flags being the host's),
// reads a line and echoes it.
func acceptOne(fd int) acceptReport {
	var r acceptReport
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 10_000); n != 1 {
		r.Err = fmt.Sprintf("poll: %d ready, %v", n, err)
		return r
	}
	cfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		r.Err = "accept: " + err.Error()
		return r
	}
	return serveConn(cfd)
}

// serveConn reads a line from connection cfd, echoes it and closes it.
func serveConn(cfd int) acceptReport {
	var r acceptReport
	defer unix.Close(cfd)
	if a, ok := must(unix.Getpeername(cfd)).(*unix.SockaddrInet4); ok {
		r.Peer = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	}
	buf := make([]byte, 64)
	n, err := unix.Read(cfd, buf)
	if err != nil {
		r.Err = "read: " + err.Error()
		return r
	}
	r.Read = string(buf[:n])
	unix.Write(cfd, append([]byte("echo "), buf[:n]...))
	return r
}

// acceptRetry is acceptOne for a server that polls for as long as it takes,
// and whose accept() may fail with EAGAIN although poll said a client is
// there (a non-blocking host socket whose client another process took): it
// counts those and tries again.
func acceptRetry(fd int) acceptReport {
	again := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(p, -1) // only a client (or Wake) ends it: a broken Wake fails the test
		cfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if err == unix.EAGAIN {
			again++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return acceptReport{Again: again, Err: "accept: " + err.Error()}
		}
		unix.SetNonblock(cfd, false)
		r := serveConn(cfd)
		r.Again = again
		return r
	}
	return acceptReport{Again: again, Err: "accept: still EAGAIN after 10 s"}
}

// echoDatagram answers one datagram with "echo " and its content.
func echoDatagram(fd int) acceptReport {
	var r acceptReport
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 10_000); n != 1 {
		r.Err = fmt.Sprintf("poll: %d ready, %v", n, err)
		return r
	}
	buf := make([]byte, 64)
	n, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		r.Err = "recvfrom: " + err.Error()
		return r
	}
	if a, ok := from.(*unix.SockaddrInet4); ok {
		r.Peer = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	}
	r.Read = string(buf[:n])
	if err := unix.Sendto(fd, append([]byte("echo "), buf[:n]...), 0, from); err != nil {
		r.Err = "sendto: " + err.Error()
	}
	return r
}

// installFilter sets no_new_privs and a filter that notifies the named
// system calls of the native ABI and allows everything else, on every thread
// (TSYNC; with a listener that needs TSYNC_ESRCH), and returns the listener.
func installFilter(names []string) (int, error) {
	nrs := map[string]uint32{"bind": unix.SYS_BIND, "listen": unix.SYS_LISTEN, "accept4": unix.SYS_ACCEPT4}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // seccomp_data.arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, K: nativeArch},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
	}
	for i, name := range names {
		// Equal: jump over the remaining tests and the ALLOW to USER_NOTIF.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: uint8(len(names) - i), K: nrs[name]})
	}
	prog = append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF})
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}

	// no_new_privs is per thread: set it on the thread that installs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	flags := unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return -1, fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	return int(fd), nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// onOtherThread runs f on a thread that is not the thread group leader.
func onOtherThread(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if unix.Gettid() != unix.Getpid() {
		f()
		return
	}
	// This goroutine holds the leader until the other is done, so the
	// other runs elsewhere.
	done := make(chan struct{})
	go func() {
		defer close(done)
		onOtherThread(f)
	}()
	<-done
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		return syscall.EIO
	}
	return 0
}

func must[T any](v T, _ error) T { return v }

// child is the parent's view of a running child.
type child struct {
	t        *testing.T
	cmd      *exec.Cmd
	conn     *net.UnixConn
	listener int
	stderr   bytes.Buffer
}

// startChild starts a child with cfg and returns it with its seccomp
// listener received. The child is killed at cleanup if still running.
func startChild(t *testing.T, cfg childConfig) (*child, error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "child"), os.NewFile(uintptr(fds[1]), "parent")
	defer theirs.Close()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, conn: c.(*net.UnixConn), listener: -1}
	t.Cleanup(func() { ch.conn.Close() })
	cfgJSON, _ := json.Marshal(cfg)
	ch.cmd = exec.Command(os.Args[0], "-test.run=^$")
	ch.cmd.Env = append(os.Environ(), childEnv+"="+string(cfgJSON))
	ch.cmd.ExtraFiles = []*os.File{theirs}
	ch.cmd.Stderr = &ch.stderr
	if cfg.OwnNetns {
		ch.cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
	}
	if err := ch.cmd.Start(); err != nil {
		if cfg.OwnNetns {
			return nil, fmt.Errorf("start the child in a user and network namespace of its own: %w", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch.cmd.ProcessState == nil {
			ch.cmd.Process.Kill()
			ch.cmd.Wait()
		}
	})
	ch.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<16)
	n, got, err := fdpass.Recv(ch.conn, buf, 1)
	if err != nil || len(got) != 1 {
		var rep childReport
		json.Unmarshal(buf[:n], &rep)
		t.Fatalf("receive the child's listener: %v, %d descriptors, child says %q; stderr: %s", err, len(got), rep.Err, ch.stderr.String())
	}
	ch.listener = got[0]
	return ch, nil
}

// read decodes the child's next message into v.
func (c *child) read(v any) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<16)
	n, err := c.conn.Read(buf)
	if err != nil {
		c.t.Fatalf("read the child's report: %v; stderr: %s", err, c.stderr.String())
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		c.t.Fatalf("child's report %q: %v", buf[:n], err)
	}
}

// finish lets the child exit and waits for it.
func (c *child) finish() {
	c.t.Helper()
	c.conn.Close()
	if err := c.cmd.Wait(); err != nil {
		c.t.Errorf("child: %v; stderr: %s", err, c.stderr.String())
	}
}
