package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
)

// procs tracks every process this run started, so that cleanup kills
// exactly those, by pid, and nothing else.
var procs = struct {
	sync.Mutex
	m map[int]*exec.Cmd
}{m: map[int]*exec.Cmd{}}

// start runs cmd with a death signal (the child dies with us even if we
// are killed) and remembers it.
func start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	procs.Lock()
	procs.m[cmd.Process.Pid] = cmd
	procs.Unlock()
	return nil
}

// stop sends SIGTERM to cmd and to every process below it (podman unshare
// runs socket-proxyd and pasta as grandchildren: signal them by pid before
// their parent goes and they are reparented out of sight), waits up to
// grace, then SIGKILLs what is left, and reaps.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	below := identify(descendants(cmd.Process.Pid))
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for _, p := range below {
		p.kill(syscall.SIGTERM)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
	for _, p := range below {
		p.kill(syscall.SIGKILL)
	}
	forget(cmd)
}

// procID is a process by pid and start time: a pid alone may have been
// reused by the time it is signalled.
type procID struct {
	pid   int
	start uint64
}

func identify(pids []int) []procID {
	var out []procID
	for _, p := range pids {
		if st, err := proc.ReadStat(p); err == nil {
			out = append(out, procID{p, st.StartTime})
		}
	}
	return out
}

// kill signals the process if it is still the one identified.
func (p procID) kill(sig syscall.Signal) {
	if proc.Alive(p.pid, p.start) {
		syscall.Kill(p.pid, sig)
	}
}

// forget drops a process that has already been waited for.
func forget(cmd *exec.Cmd) {
	procs.Lock()
	delete(procs.m, cmd.Process.Pid)
	procs.Unlock()
}

// killAll is the exit path: every tracked process and everything below it,
// by pid, deepest first.
func killAll() {
	procs.Lock()
	defer procs.Unlock()
	for pid, cmd := range procs.m {
		below := identify(descendants(pid))
		for i := len(below) - 1; i >= 0; i-- {
			below[i].kill(syscall.SIGKILL)
		}
		cmd.Process.Kill()
		delete(procs.m, pid)
	}
}

// procMem is what /proc says about a process (or a process tree, summed)
// and its descriptors.
type procMem struct {
	RSSKiB, HWMKiB int64
	FDs            int
	CPUTicks       int64 // utime+stime, clock ticks (1/100 s)
	Procs          int   // how many processes were summed
}

func (m *procMem) add(o procMem) {
	m.RSSKiB += o.RSSKiB
	m.HWMKiB += o.HWMKiB
	m.FDs += o.FDs
	m.CPUTicks += o.CPUTicks
	m.Procs += o.Procs
}

func readProc(pid int) (procMem, error) {
	m := procMem{Procs: 1}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSSKiB = v
		case "VmHWM:":
			m.HWMKiB = v
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return m, err
	}
	m.FDs = len(fds)
	st, err := proc.ReadStat(pid)
	if err != nil {
		return m, err
	}
	m.CPUTicks = int64(st.UTime + st.STime)
	return m, nil
}

// readTree sums readProc over pid and every process below it: bro-proxy's
// rootless namespace helper is a child of bro-proxy and part of its cost.
func readTree(pid int) (procMem, error) {
	m, err := readProc(pid)
	if err != nil {
		return m, err
	}
	for _, c := range descendants(pid) {
		if cm, err := readProc(c); err == nil {
			m.add(cm)
		}
	}
	return m, nil
}

// descendants lists every process below pid, at any depth.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(p); err == nil {
			children[st.PPID] = append(children[st.PPID], p)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// findProc waits up to timeout for the process doing a proxy's work: pid
// itself or a process below it whose executable's base name starts with
// exe (systemd-socket-activate execs bro-proxy in place; podman unshare
// runs socket-proxyd and pasta as grandchildren).
func findProc(pid int, exe string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range append([]int{pid}, descendants(pid)...) {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); err == nil && strings.HasPrefix(filepath.Base(l), exe) {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no process %s* at or below pid %d after %s", exe, pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noFile is this process's soft and hard RLIMIT_NOFILE.
func noFile() (soft, hard uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0, 0
	}
	return lim.Cur, lim.Max
}

func numCPU() int { return runtime.NumCPU() }
