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
	skip   bool // tests: never touch the real manager
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
	if s.skip {
		return
	}
	out, err := exec.Command("systemctl", s.args(args...)...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(s.stderr, "warning: %s: %v: %s\n", s.command(args...), err, strings.TrimSpace(string(out)))
	}
}
