package main

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// systemctl runs systemctl for the scope the units were written for.
type systemctl struct {
	user   bool
	stderr io.Writer
	// exec runs systemctl with args; nil runs the real one. The Go tests
	// record the calls here (the bats suites drive the real manager).
	exec func(args ...string) ([]byte, error)
}

func (s systemctl) args(args ...string) []string {
	if s.user {
		return append([]string{"--user"}, args...)
	}
	return args
}

// command is the command line to print for the user to run.
func (s systemctl) command(args ...string) string {
	return "systemctl " + strings.Join(s.args(args...), " ")
}

// run runs systemctl and only warns on failure: --remove must delete the
// files even when no manager is reachable (no session, a container build).
func (s systemctl) run(args ...string) {
	run := s.exec
	if run == nil {
		run = func(args ...string) ([]byte, error) { return exec.Command("systemctl", args...).CombinedOutput() }
	}
	out, err := run(s.args(args...)...)
	if err != nil {
		fmt.Fprintf(s.stderr, "warning: %s: %v: %s\n", s.command(args...), err, strings.TrimSpace(string(out)))
	}
}
