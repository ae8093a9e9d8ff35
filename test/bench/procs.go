package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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

// stop sends SIGTERM, waits up to grace, then SIGKILL, and reaps.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
	procs.Lock()
	delete(procs.m, cmd.Process.Pid)
	procs.Unlock()
}

// forget drops a process that has already been waited for.
func forget(cmd *exec.Cmd) {
	procs.Lock()
	delete(procs.m, cmd.Process.Pid)
	procs.Unlock()
}

// killAll is the exit path: every tracked process, by pid.
func killAll() {
	procs.Lock()
	defer procs.Unlock()
	for pid, cmd := range procs.m {
		cmd.Process.Kill()
		delete(procs.m, pid)
	}
}

// procMem is what /proc says about a process's memory and descriptors.
type procMem struct {
	RSSKiB, HWMKiB, AnonKiB int64
	FDs                     int
	CPUTicks                int64 // utime+stime, clock ticks (1/100 s)
}

func readProc(pid int) (procMem, error) {
	var m procMem
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
		case "RssAnon:":
			m.AnonKiB = v
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return m, err
	}
	m.FDs = len(fds)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return m, err
	}
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field, stime the 15th.
	if i := bytes.LastIndexByte(stat, ')'); i > 0 {
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 13 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			m.CPUTicks = u + s
		}
	}
	return m, nil
}
