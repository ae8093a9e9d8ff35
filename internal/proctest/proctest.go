// Package proctest starts the throwaway processes the tests of bro-hook,
// pkg/hook and pkg/record inspect: a plain sleep, or a sleep in a network
// namespace of its own (what a container is to the hook), or the pid of one
// that is gone. Creating a namespace needs root; make check and CI run the Go
// tests as root.
package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Sleeper runs `sleep 60`, in a new network namespace if newNetNS, and
// returns its pid once the process is sleep (after unshare's exec, so the
// namespace is in place). It is killed and reaped when the test ends.
func Sleeper(t testing.TB, newNetNS bool) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if newNetNS {
		if os.Geteuid() != 0 {
			t.Fatal("needs root for a throwaway network namespace: run the Go tests as root, as make check and CI do")
		}
		cmd = exec.Command("unshare", "--net", "sleep", "60")
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && string(comm) == "sleep\n" {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not become sleep within 5s (comm %q, %v)", cmd.Args, comm, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dead returns the pid of a process that has exited and been reaped: a pid
// that names no process (until the kernel reuses it, which a test does not
// wait for).
func Dead(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}
