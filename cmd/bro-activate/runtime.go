package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// HandoffRuntimeRule is what the handoff mode needs of the OCI runtime,
// quoted in its refusal: listenerPath support (the runtime sends the seccomp
// listener to the agent). Only runc was tried.
const HandoffRuntimeRule = "runc ≥ 1.1.0 or crun ≥ 0.19 (listenerPath in the seccomp profile)"

// podmanRuntimeVersion asks Podman for its OCI runtime's version line, as
// the user whose containers it runs.
func podmanRuntimeVersion() (string, error) {
	cmd := exec.Command("podman", "info", "--format", "{{.Host.OCIRuntime.Version}}")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output() // stderr: warnings, such as a runtime of another container missing
	if err != nil {
		return "", fmt.Errorf("podman info: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// checkHandoffRuntime refuses a runtime whose version output (the first
// line of `RUNTIME --version`, "runc version 1.1.5+ds1") is not one that
// sends seccomp listeners.
func checkHandoffRuntime(version string) error {
	first, _, _ := strings.Cut(version, "\n")
	f := strings.Fields(first)
	if len(f) < 3 || f[1] != "version" {
		return fmt.Errorf("bro.mode=handoff: cannot tell the OCI runtime from %q: want %s", first, HandoffRuntimeRule)
	}
	name, v := f[0], f[2]
	min := map[string][2]int{"runc": {1, 1}, "crun": {0, 19}}[name]
	if min == [2]int{} {
		return fmt.Errorf("bro.mode=handoff: OCI runtime %s %s is not known to send seccomp listeners: want %s", name, v, HandoffRuntimeRule)
	}
	major, minor, ok := majorMinor(v)
	if !ok || major < min[0] || (major == min[0] && minor < min[1]) {
		return fmt.Errorf("bro.mode=handoff: OCI runtime %s %s is too old: want %s", name, v, HandoffRuntimeRule)
	}
	return nil
}

// majorMinor reads "1.1.5+ds1" as 1, 1.
func majorMinor(v string) (int, int, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}
