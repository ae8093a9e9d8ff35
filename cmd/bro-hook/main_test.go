package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/internal/proctest"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/record"
)

// The hook is tested as the runtime runs it: as a process, its state on
// stdin, its stage in argv, no environment but what the hook config gives.
// TestMain re-executes the test binary as bro-hook when hookExecEnv is set,
// so the whole of main (flag-less dispatch, exit codes, stderr) is covered.
const hookExecEnv = "BRO_HOOK_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(hookExecEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type hookResult struct {
	code           int
	stdout, stderr string
}

// runHook runs the hook with args and stdin, its state directory the given
// path, and returns its exit code and stderr. It fails the test if the hook
// runs longer than 10 s: no input may make it hang.
func runHook(t *testing.T, stateDir string, stdin []byte, args ...string) hookResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	// GORACE: under -race a process that exits 0 otherwise sleeps 1 s.
	cmd.Env = []string{hookExecEnv + "=1", "PATH=/usr/bin:/bin", record.StateDirEnv + "=" + stateDir, "GORACE=atexit_sleep_ms=0", "BRO_HOOK_JOURNAL=0"}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("bro-hook %v did not exit within 10s", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bro-hook %v: %v", args, err)
	}
	return hookResult{code, stdout.String(), stderr.String()}
}

func stateJSON(t *testing.T, id string, pid int, value string) []byte {
	t.Helper()
	s := map[string]any{"ociVersion": "1.0.2-dev", "id": id, "status": "created", "pid": pid, "bundle": ""}
	if value != "" {
		s["annotations"] = map[string]string{annotation.Key: value}
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// configJSON is a config.json with bro.activate and, unless mode is "",
// bro.mode=mode; seccomp gives it a filter that allows everything.
func configJSON(t *testing.T, mode string, seccomp bool) []byte {
	t.Helper()
	a := map[string]string{annotation.Key: "8080"}
	if mode != "" {
		a[annotation.ModeKey] = mode
	}
	c := map[string]any{"ociVersion": "1.0.2-dev", "annotations": a,
		"process": map[string]any{"args": []string{"true"}, "env": []string{"PATH=/bin"}}, "linux": map[string]any{}}
	if seccomp {
		c["linux"] = map[string]any{"seccomp": map[string]any{"defaultAction": "SCMP_ACT_ALLOW"}}
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// goneShell is the pid of a process that has exited and been reaped.
func gonePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// dirFiles lists dir; a missing dir is nil.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestHookBadInput: each bad input gives one line on stderr (none for a
// success), the documented exit code, and leaves nothing in the state
// directory: it is not even created.
func TestHookBadInput(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	gone := gonePID(t)
	self := os.Getpid() // shares the host's network namespace
	tenMiB := bytes.Repeat([]byte("x"), 10<<20)
	hugeJSON := append(append([]byte(`{"id":"`+id+`","pid":1,"annotations":{"x":"`), tenMiB...), `"}}`...)
	tests := []struct {
		name  string
		args  []string
		stdin []byte
		code  int
		want  string // the one stderr line, or a regexp if it starts with ^; "" for none
	}{
		{"no stage", nil, nil, 2,
			"bro-hook: usage: bro-hook precreate|prestart|createRuntime|poststop (config.json or OCI state on stdin)"},
		{"two stages", []string{"prestart", "poststop"}, nil, 2,
			"bro-hook: usage: bro-hook precreate|prestart|createRuntime|poststop (config.json or OCI state on stdin)"},
		{"unknown stage", []string{"poststart"}, stateJSON(t, id, self, "8080"), 2,
			`bro-hook: unknown stage "poststart": want precreate, prestart, createRuntime or poststop`},
		{"empty stage", []string{""}, nil, 2,
			`bro-hook: unknown stage "": want precreate, prestart, createRuntime or poststop`},
		{"precreate, empty stdin", []string{"precreate"}, nil, 1,
			"bro-hook: decode container config: unexpected end of JSON input"},
		{"precreate, 20 MiB", []string{"precreate"}, bytes.Repeat(tenMiB, 2), 1,
			"bro-hook: container config on stdin is larger than 16777216 bytes"},
		{"precreate, bad bro.mode", []string{"precreate"}, configJSON(t, "bogus", true), 1,
			`bro-hook: invalid bro.mode="bogus": want proxy, direct or handoff`},
		// The test runs in no NAME.service cgroup, or in one (a CI job's)
		// with no agent socket in the test's state directory.
		{"precreate, handoff from a shell", []string{"precreate"}, configJSON(t, "handoff", true), 1,
			"^bro-hook: bro.mode=handoff: (the container must be started by its systemd unit \\(a quadlet with bro.activate\\), not from a shell: no agent would receive its seccomp listener|no agent socket at .*)$"},
		{"precreate, handoff without seccomp", []string{"precreate"}, configJSON(t, "handoff", false), 1,
			"bro-hook: bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"},
		{"precreate, pass-through", []string{"precreate"}, configJSON(t, "proxy", true), 0, ""},
		{"empty stdin", []string{"prestart"}, nil, 1,
			"bro-hook: read container state: stdin is empty"},
		{"blank stdin", []string{"prestart"}, []byte(" \n\t\n"), 1,
			"bro-hook: read container state: stdin is empty"},
		{"10 MiB of stdin", []string{"prestart"}, tenMiB, 1,
			"bro-hook: container state on stdin is larger than 1048576 bytes"},
		{"10 MiB of valid JSON", []string{"prestart"}, hugeJSON, 1,
			"bro-hook: container state on stdin is larger than 1048576 bytes"},
		{"invalid JSON", []string{"prestart"}, []byte(`{"id": "abc", `), 1,
			"bro-hook: decode container state: unexpected end of JSON input"},
		{"not an object", []string{"prestart"}, []byte(`[1,2,3]`), 1,
			"^bro-hook: decode container state: json: cannot unmarshal array into Go value of type main.State|^bro-hook: decode container state: json: cannot unmarshal array into Go value of type hook.State"},
		{"binary garbage", []string{"prestart"}, []byte{0, 1, 2, 0xff, 0xfe}, 1,
			"bro-hook: decode container state: invalid character '\\x00' looking for beginning of value"},
		{"no id", []string{"prestart"}, []byte(`{"pid": 1, "annotations": {"bro.activate": "80"}}`), 1,
			"bro-hook: invalid container state: missing required property: id"},
		{"id climbing out", []string{"prestart"}, stateJSON(t, "../../etc/passwd", self, "80"), 1,
			`bro-hook: invalid container state: id "../../etc/passwd": want 1-128 characters of [A-Za-z0-9_.-], not starting with '.'`},
		{"negative pid", []string{"prestart"}, stateJSON(t, id, -1, "80"), 1,
			"bro-hook: invalid container state: pid -1 is negative"},
		{"no pid", []string{"prestart"}, stateJSON(t, id, 0, "80"), 1,
			"bro-hook: container 0123456789ab: state has no pid (stage must be prestart or createRuntime)"},
		{"pid that is gone", []string{"prestart"}, stateJSON(t, id, gone, "80"), 1,
			fmt.Sprintf("^bro-hook: container 0123456789ab: process %d is gone: ", gone)},
		{"pid in the host's netns", []string{"prestart"}, stateJSON(t, id, self, "80"), 1,
			"bro-hook: container 0123456789ab shares the host's network namespace (Network=host?): bro.activate needs a container with its own"},
		{"malformed annotation", []string{"prestart"}, stateJSON(t, id, self, "80:abc"), 1,
			`bro-hook: invalid bro.activate="80:abc": container port "abc" is not a number; want ` + annotation.PortRule},
		{"port 0", []string{"prestart"}, stateJSON(t, id, self, "0"), 1,
			"^bro-hook: invalid bro.activate=\"0\": "},
		{"port 65536", []string{"prestart"}, stateJSON(t, id, self, "65536"), 1,
			"^bro-hook: invalid bro.activate=\"65536\": "},
		{"no annotation: nothing to do", []string{"prestart"}, stateJSON(t, id, self, ""), 0, ""},
		{"createRuntime like prestart", []string{"createRuntime"}, nil, 1,
			"bro-hook: read container state: stdin is empty"},
		{"poststop of an unknown id", []string{"poststop"}, stateJSON(t, id, 0, "80"), 0, ""},
		{"poststop, empty stdin: warns, never fails a stop", []string{"poststop"}, nil, 0,
			"bro-hook: warning: read container state: stdin is empty"},
		{"poststop, 10 MiB", []string{"poststop"}, tenMiB, 0,
			"bro-hook: warning: container state on stdin is larger than 1048576 bytes"},
		{"poststop, invalid JSON", []string{"poststop"}, []byte("{"), 0,
			"bro-hook: warning: decode container state: unexpected end of JSON input"},
		{"poststop, id climbing out", []string{"poststop"}, stateJSON(t, "..", 0, ""), 0,
			`bro-hook: warning: invalid container state: id "..": want 1-128 characters of [A-Za-z0-9_.-], not starting with '.'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bro")
			r := runHook(t, dir, tt.stdin, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code: got %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			checkStderr(t, r.stderr, tt.want)
			if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory %s: got %v (files %q); want it never created", dir, err, dirFiles(t, dir))
			}
		})
	}
}

// checkStderr: want "" means nothing on stderr; otherwise exactly one line,
// equal to want (or matching it, for a want starting with ^), and never a
// panic or a stack trace.
func checkStderr(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Fatalf("stderr holds a panic: %q", stderr)
	}
	if want == "" {
		if stderr != "" {
			t.Errorf("stderr: got %q; want nothing", stderr)
		}
		return
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr: got %q; want exactly one line", stderr)
	}
	line := strings.TrimSuffix(stderr, "\n")
	if strings.HasPrefix(want, "^") {
		if !regexp.MustCompile(want).MatchString(line) {
			t.Errorf("stderr: got %q; want a match of %q", line, want)
		}
		return
	}
	if line != want {
		t.Errorf("stderr: got %q; want %q", line, want)
	}
}

// checkOnlyRecord: dir holds exactly want (names), no temp file.
func checkFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := dirFiles(t, dir)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files in %s: got %q; want %q", dir, got, want)
	}
}

// TestHookTwoPrestartsOneID: a second prestart for the same id (a runtime
// that retries) replaces the record; poststop removes it; nothing is left.
func TestHookTwoPrestartsOneID(t *testing.T) {
	pid := proctest.Sleeper(t, true)
	const id = "twice"
	dir := filepath.Join(t.TempDir(), "bro")
	for i := 1; i <= 2; i++ {
		r := runHook(t, dir, stateJSON(t, id, pid, "8080"), "prestart")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("prestart #%d: exit %d, stderr %q; want 0 and nothing", i, r.code, r.stderr)
		}
		checkFiles(t, dir, id+".json")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode: got %v; want 0700", fi.Mode().Perm())
	}
	fi, err = os.Stat(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode: got %v; want 0600", fi.Mode().Perm())
	}
	d, err := record.OpenStateDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := d.Read(id)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rec.PID != pid || annotation.FormatPorts(rec.Ports) != "127.0.0.1:8080:8080/tcp" {
		t.Errorf("record: got pid %d ports %s; want pid %d ports 127.0.0.1:8080:8080/tcp", rec.PID, annotation.FormatPorts(rec.Ports), pid)
	}
	for i := 1; i <= 2; i++ { // the second poststop finds nothing: still 0
		r := runHook(t, dir, stateJSON(t, id, 0, ""), "poststop")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("poststop #%d: exit %d, stderr %q; want 0 and nothing", i, r.code, r.stderr)
		}
		checkFiles(t, dir)
	}
}

// TestHookPrestartPoststopRace: prestart and poststop of one id run at the
// same time, 20 rounds. Whatever order they end in, each exits 0 with
// nothing on stderr, no temp file is left, and what is left is either
// nothing or a whole record. A final poststop leaves the directory empty.
func TestHookPrestartPoststopRace(t *testing.T) {
	pid := proctest.Sleeper(t, true)
	const id = "racer"
	dir := filepath.Join(t.TempDir(), "bro")
	if r := runHook(t, dir, stateJSON(t, id, pid, "8080"), "prestart"); r.code != 0 {
		t.Fatalf("first prestart: exit %d, %q", r.code, r.stderr)
	}
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		results := make([]hookResult, 2)
		for i, stage := range []string{"prestart", "poststop"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = runHook(t, dir, stateJSON(t, id, pid, "8080"), stage)
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("round %d, %s: exit %d, stderr %q; want 0 and nothing", round, []string{"prestart", "poststop"}[i], r.code, r.stderr)
			}
		}
		files := dirFiles(t, dir)
		if len(files) > 1 || len(files) == 1 && files[0] != id+".json" {
			t.Fatalf("round %d: files %q; want none or %s.json", round, files, id)
		}
		if len(files) == 1 {
			d, err := record.OpenStateDir(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Read(id)
			d.Close()
			if err != nil {
				t.Fatalf("round %d: the record left is not whole: %v", round, err)
			}
		}
	}
	if r := runHook(t, dir, stateJSON(t, id, 0, ""), "poststop"); r.code != 0 || r.stderr != "" {
		t.Fatalf("final poststop: exit %d, stderr %q", r.code, r.stderr)
	}
	checkFiles(t, dir)
}

// TestHookStaleRecordRemoved: a record whose process died without a
// poststop (conmon killed) is removed by the next prestart of any container.
func TestHookStaleRecordRemoved(t *testing.T) {
	pid := proctest.Sleeper(t, true)
	dir := filepath.Join(t.TempDir(), "bro")
	if r := runHook(t, dir, stateJSON(t, "stale", pid, "8080"), "prestart"); r.code != 0 {
		t.Fatalf("prestart: exit %d, %q", r.code, r.stderr)
	}
	// forge what a killed conmon leaves: the same record, its process gone
	data, err := os.ReadFile(filepath.Join(dir, "stale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec["pid"] = gonePID(t)
	out, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(dir, "stale.json"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runHook(t, dir, stateJSON(t, "fresh", pid, "8080"), "prestart"); r.code != 0 || r.stderr != "" {
		t.Fatalf("prestart of another container: exit %d, stderr %q", r.code, r.stderr)
	}
	checkFiles(t, dir, "fresh.json")
}

// TestHookPrecreatePassThrough: for a container that is not bro.mode=handoff
// the hook writes Podman's config.json back byte for byte, and nothing else.
func TestHookPrecreatePassThrough(t *testing.T) {
	fixture, err := os.ReadFile("../../pkg/hook/testdata/podman-config.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "proxy", "direct"} {
		t.Run("mode "+mode, func(t *testing.T) {
			in := bytes.Replace(fixture, []byte(`"bro.mode":"handoff",`), []byte(`"bro.activate":"8080",`), 1)
			if mode != "" {
				in = bytes.Replace(fixture, []byte(`"bro.mode":"handoff"`), []byte(`"bro.mode":"`+mode+`"`), 1)
			}
			if bytes.Equal(in, fixture) {
				t.Fatal("the fixture has no bro.mode=handoff to replace")
			}
			dir := filepath.Join(t.TempDir(), "bro")
			r := runHook(t, dir, in, "precreate")
			if r.code != 0 {
				t.Fatalf("exit code: got %d; want 0 (stderr %q)", r.code, r.stderr)
			}
			checkStderr(t, r.stderr, "")
			if r.stdout != string(in) {
				t.Errorf("stdout: got %d bytes that differ from the %d of stdin; want them byte for byte", len(r.stdout), len(in))
			}
			if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory %s: got %v; want it never created", dir, err)
			}
		})
	}
}
