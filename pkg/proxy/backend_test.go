package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/hook"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/brothaman/brothaman-go/pkg/record"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

// fakeContainer is a process in a network namespace of its own with a
// server on 127.0.0.1:port inside that answers every connection with its
// greeting: what a Network=none container is to bro-proxy. Root only.
type fakeContainer struct {
	cmd  *exec.Cmd
	port int
}

func startFakeContainer(t *testing.T, greeting string) *fakeContainer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root for network namespaces: run the Go tests as root, as make check and CI do")
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	// Wait until the child has its own namespace and exec'd sleep.
	self, _ := ns.Open("/proc/thread-self/ns/net")
	defer self.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, err := ns.OpenNetNSOfPID(pid)
		if err == nil {
			other := !h.Equal(self)
			h.Close()
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if other && strings.TrimSpace(string(comm)) == "sleep" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("child did not enter its own network namespace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lnc := make(chan net.Listener)
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the child's namespace
		h, err := ns.OpenNetNSOfPID(pid)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := unix.Setns(h.Fd(), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			errc <- err
			return
		}
		lnc <- ln
	}()
	var ln net.Listener
	select {
	case ln = <-lnc:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, greeting)
			c.Close()
		}
	}()
	return &fakeContainer{cmd: cmd, port: ln.Addr().(*net.TCPAddr).Port}
}

func (f *fakeContainer) record(t *testing.T, id, name string) *record.Record {
	t.Helper()
	st := &hook.State{State: specs.State{ID: id, Pid: f.cmd.Process.Pid,
		Annotations: map[string]string{annotation.Key: fmt.Sprint(f.port)}}}
	r, err := hook.NewRecord(st, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Name = name
	return r
}

func greet(t *testing.T, s Backend, port int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g, err := s.Get(ctx)
	if err != nil {
		return "", err
	}
	tg, _ := ns.ParseTarget("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	c, err := ns.Dial(ctx, g.sockets, tg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func openTestStateDir(t *testing.T) *record.StateDir {
	t.Helper()
	p := t.TempDir()
	os.Chmod(p, 0o700)
	d, err := record.OpenStateDir(p, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestContainerSourceFollowsRestart(t *testing.T) {
	a := startFakeContainer(t, "first")
	dir := openTestStateDir(t)
	src, err := NewContainer(ContainerConfig{Name: "web", Dir: dir, Timeout: time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// No record yet: a client waits, then gives up with errNoContainer.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = src.Get(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), `container did not appear: no live record of container "web"`) {
		t.Fatalf("get without a record = %v", err)
	}
	ra := a.record(t, "aaaaaaaaaaaaaaaa", "web")
	if err := dir.Write(ra); err != nil {
		t.Fatal(err)
	}
	if got, err := greet(t, src, a.port); err != nil || got != "first" {
		t.Fatalf("through the first container: %q, %v; want first", got, err)
	}
	// The container restarts: a new process in a new namespace, a new record;
	// poststop removes the old one.
	b := startFakeContainer(t, "second")
	a.cmd.Process.Kill()
	a.cmd.Wait()
	if err := dir.Write(b.record(t, "bbbbbbbbbbbbbbbb", "web")); err != nil {
		t.Fatal(err)
	}
	dir.Remove(ra.ID)
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := greet(t, src, b.port)
		if err == nil && got == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %q, %v; want second", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestContainerSourceRefusals(t *testing.T) {
	c := startFakeContainer(t, "hello")
	noRecord := func(_ *record.Record, dir string) string {
		return fmt.Sprintf(`container did not appear: no live record of container "web" in %s`, dir)
	}
	tests := []struct {
		name   string
		mangle func(*record.Record)
		want   func(r *record.Record, dir string) string
	}{
		{"another user's record", func(r *record.Record) { r.UID = 4242 }, noRecord},
		{"netns does not match", func(r *record.Record) { r.NetNSIno++ },
			func(r *record.Record, dir string) string {
				return fmt.Sprintf(`container did not appear: live record of container "web" in %s not entered: `+
					`refusing container web: pid %d is in network namespace %d:%d, the record says %d:%d`,
					dir, r.PID, r.NetNSDev, r.NetNSIno-1, r.NetNSDev, r.NetNSIno)
			}},
		{"pid reused (a stale record)", func(r *record.Record) { r.PIDStart-- }, noRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := openTestStateDir(t)
			r := c.record(t, "cccccccccccccccc", "web")
			tt.mangle(r)
			if err := dir.Write(r); err != nil {
				t.Fatal(err)
			}
			src, err := NewContainer(ContainerConfig{Name: "web", Dir: dir, Timeout: time.Second, Log: testLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			g, err := src.Get(ctx)
			if err == nil {
				t.Fatalf("entered %s despite: %s", g.desc, tt.name)
			}
			if want := tt.want(r, dir.Path); err.Error() != want || !errors.Is(err, errNoContainer) {
				t.Errorf("got %v;\nwant %s (wrapping errNoContainer)", err, want)
			}
		})
	}
}

// followers counts the goroutines that follow a Container's records.
func followers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pkg/proxy.NewContainer") || strings.Contains(g, "pkg/proxy.(*Container).follow") {
			n++
		}
	}
	return n
}

// TestContainerCloseStopsFollowing: after Close, nothing of the backend is
// left: no goroutine waits on the watcher and the state directory's
// descriptor is closed (ContainerConfig.Dir: the backend closes it).
func TestContainerCloseStopsFollowing(t *testing.T) {
	c := startFakeContainer(t, "hello")
	dir := openTestStateDir(t)
	before := followers()
	src, err := NewContainer(ContainerConfig{Name: "web", Dir: dir, Timeout: time.Second, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Write(c.record(t, "dddddddddddddddd", "web")); err != nil {
		t.Fatal(err)
	}
	if got, err := greet(t, src, c.port); err != nil || got != "hello" {
		t.Fatalf("through the container: %q, %v; want hello", got, err)
	}
	src.Close()
	if fd := dir.Fd(); fd != -1 {
		t.Errorf("state directory descriptor = %d after Close; want -1 (closed)", fd)
	}
	deadline := time.Now().Add(2 * time.Second)
	for followers() > before {
		if time.Now().After(deadline) {
			t.Fatalf("got %d goroutines following records 2s after Close; want %d, as before NewContainer", followers(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A record change after Close is not followed (and does not touch the
	// closed directory).
	if err := os.WriteFile(filepath.Join(dir.Path, "x.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if g, err := src.Get(ctx); err == nil {
		t.Fatalf("Get after Close = %s; want an error", g.desc)
	}
}

// TestContainerRetriesFailedEnter: a transient failure to enter the
// namespace of a live record (EMFILE, a helper that did not start) is tried
// again while a client waits, not only at the next record change that may
// never come; the failure is logged once, not at every try.
func TestContainerRetriesFailedEnter(t *testing.T) {
	c := startFakeContainer(t, "hello")
	dir := openTestStateDir(t)
	logger, logs := logtest.NewNullLogger()
	var calls atomic.Int32
	const failures = 3
	src, err := NewContainer(ContainerConfig{Name: "web", Dir: dir, Timeout: 5 * time.Second, Log: logrus.NewEntry(logger),
		enter: func(pid int, start uint64, netns *[2]uint64, mount bool) (ns.Sockets, error) {
			if calls.Add(1) <= failures {
				return nil, fmt.Errorf("enter the namespaces of pid %d: %w", pid, unix.EMFILE)
			}
			return enterProcess(pid, start, netns, mount)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := dir.Write(c.record(t, "eeeeeeeeeeeeeeee", "web")); err != nil {
		t.Fatal(err)
	}
	// greet waits 2 s at most; the retries take 50+100+200 ms.
	if got, err := greet(t, src, c.port); err != nil || got != "hello" {
		t.Fatalf("through the container after %d failed entries: %q, %v; want hello", failures, got, err)
	}
	if n := calls.Load(); n != failures+1 {
		t.Errorf("got %d entries; want %d (%d failed, then one that worked)", n, failures+1, failures)
	}
	n := 0
	for _, e := range logs.AllEntries() {
		if strings.Contains(e.Message, unix.EMFILE.Error()) {
			n++
		}
	}
	if n > 1 {
		t.Errorf("got the failure logged %d times; want once", n)
	}
}
