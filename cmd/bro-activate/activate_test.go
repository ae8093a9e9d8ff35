package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/quadlet"
)

// setup makes a quadlet directory (found through QUADLET_UNIT_DIRS, which
// quadlet honours too) and a unit directory.
func setup(t *testing.T, quadletText string) (qdir, udir string) {
	t.Helper()
	qdir, udir = t.TempDir(), t.TempDir()
	t.Setenv("QUADLET_UNIT_DIRS", qdir)
	if quadletText != "" {
		if err := os.WriteFile(filepath.Join(qdir, "db.container"), []byte(quadletText), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return qdir, udir
}

// systemctlCalls holds the systemctl command lines of the last run.
var systemctlCalls []string

func run(t *testing.T, direct bool, args ...string) (string, error) {
	t.Helper()
	o, err := parseOptions(args, direct, io.Discard)
	if err != nil {
		return "", err
	}
	systemctlCalls = nil
	o.systemctl = func(args ...string) ([]byte, error) {
		systemctlCalls = append(systemctlCalls, strings.Join(args, " "))
		return nil, nil
	}
	var out bytes.Buffer
	err = activate(o, &out, io.Discard)
	return out.String(), err
}

func TestActivateAddsAnnotationAndRemoves(t *testing.T) {
	const q = "[Container]\nImage=localhost/postgres:15\nNetwork=none\n"
	qdir, udir := setup(t, q)
	out, err := run(t, false, "--unit-dir", udir, "--target", "5432", "--idle-stop", "30s", "--proxy", "/usr/bin/bro-proxy", "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"wrote " + udir + "/db-activator.socket", "added Annotation=bro.activate=127.0.0.1:5432:5432/tcp",
		"next: systemctl --user daemon-reload && systemctl --user enable --now db-activator.socket"} {
		if os.Getuid() == 0 {
			want = strings.ReplaceAll(want, "--user ", "")
		}
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	svc, _ := os.ReadFile(filepath.Join(udir, "db-activator.service"))
	if want := "ExecStart=/usr/bin/bro-proxy --container systemd-db --start-unit db.service --connections-max 4096 --exit-idle-time 30s --target 127.0.0.1:5432\n"; !strings.Contains(string(svc), want) {
		t.Errorf("service lacks %q:\n%s", want, svc)
	}
	if _, err := os.Stat(filepath.Join(udir, "db.service.d/50-db-activator-idle-stop.conf")); err != nil {
		t.Error(err)
	}
	if _, err := run(t, false, "--unit-dir", udir, "db"); err == nil ||
		err.Error() != "write unit "+udir+"/db-activator.socket: file already exists (use --force to replace, --remove to delete)" {
		t.Errorf("second run error = %v", err)
	}
	if _, err := run(t, false, "--unit-dir", udir, "--force", "db"); err != nil {
		t.Errorf("--force: %v", err)
	}
	if len(systemctlCalls) != 0 {
		t.Errorf("writing units ran systemctl %q; want nothing (it prints the next commands)", systemctlCalls)
	}
	if _, err := run(t, false, "--unit-dir", udir, "--remove", "db"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(udir); len(entries) != 0 {
		t.Errorf("left after --remove: %v", entries)
	}
	if got, _ := os.ReadFile(filepath.Join(qdir, "db.container")); string(got) != q {
		t.Errorf("quadlet after --remove = %q; want %q", got, q)
	}
	scope := "--user "
	if os.Getuid() == 0 {
		scope = ""
	}
	want := []string{scope + "disable --now db-activator.socket", scope + "stop db-activator.service", scope + "daemon-reload"}
	if strings.Join(systemctlCalls, "\n") != strings.Join(want, "\n") {
		t.Errorf("--remove ran systemctl %q; want %q", systemctlCalls, want)
	}
}

func TestActivateErrors(t *testing.T) {
	qdir, udir := setup(t, "[Container]\nImage=x\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, "find nope.container in " + qdir + ": quadlet not found"},
		{[]string{"../db"}, `invalid quadlet name "../db": contains "/"; want 1-200 characters of A-Z a-z 0-9 _ . : -, not starting with - or ., no / and no ..`},
		{[]string{"db"}, "no ports for " + qdir + "/db.container: it has no Annotation=bro.activate=… and no --listen or --target was given"},
		{[]string{"a", "b"}, "want exactly one NAME (a quadlet NAME.container), got 2 (see bro-activate --help)"},
		{[]string{"--user", "--system", "db"}, "invalid options: --user and --system exclude each other"},
		{[]string{"--idle-stop", "5fortnights", "db"}, `invalid argument "5fortnights" for "--idle-stop" flag: time span "5fortnights": unknown unit "fortnights" (want ns, us, ms, s, min, h, d, w) (see bro-activate --help)`},
		{[]string{"-idle-stop", "5min", "db"}, `unknown shorthand flag: 'i' in -idle-stop (see bro-activate --help)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := run(t, false, append([]string{"--unit-dir", udir}, tt.args...)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestDirectDryRun(t *testing.T) {
	_, udir := setup(t, "[Container]\nImage=x\nAnnotation=bro.activate=127.0.0.1:7000:7\n")
	out, err := run(t, true, "--unit-dir", udir, "--dry-run", "db")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "# "+udir+"/db.socket\n") || !strings.Contains(out, "ListenStream=127.0.0.1:7000\n") {
		t.Errorf("dry run output:\n%s", out)
	}
	if entries, _ := os.ReadDir(udir); len(entries) != 0 {
		t.Errorf("--dry-run wrote %v", entries)
	}
}

func TestGenerator(t *testing.T) {
	qdir, out := t.TempDir(), t.TempDir()
	admin := t.TempDir()
	files := map[string]string{
		"web.container":    "[Container]\nImage=x\nAnnotation=bro.activate=8080\n",
		"plain.container":  "[Container]\nImage=x\n",
		"bad.container":    "[Container]\nAnnotation=bro.activate=99999\n",
		"broken.container": "no section\n",
		"direct.container": "[Container]\nAnnotation=bro.activate=9090\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(qdir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "direct.socket"), []byte("# Generated by bro-activate.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	generate(out, []string{qdir}, admin, "/usr/local/bin/bro-proxy", &log)
	var got []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(p, out+"/"))
		}
		return nil
	})
	want := "sockets.target.wants/web-activator.socket web-activator.service web-activator.socket web.service.d/50-web-activator-start-limit.conf"
	if strings.Join(got, " ") != want {
		t.Errorf("generated %q; want %q", strings.Join(got, " "), want)
	}
	if target, _ := os.Readlink(filepath.Join(out, "sockets.target.wants/web-activator.socket")); target != out+"/web-activator.socket" {
		t.Errorf("wants link -> %q", target)
	}
	wantLog := "bro-generator: skipping " + qdir + "/bad.container: invalid bro.activate=\"99999\": container port 99999 is out of range 1-65535; want [[ip:]hostPort:]containerPort[/tcp|/udp], ports 1-65535, IPv6 in brackets\n" +
		"bro-generator: skipping " + qdir + "/broken.container: parse quadlet " + qdir + "/broken.container: line 1 \"no section\": not a [section], key=value pair or comment\n" +
		"bro-generator: skipping " + qdir + "/direct.container: direct is in direct mode (" + admin + "/direct.socket)\n"
	if log.String() != wantLog {
		t.Errorf("log =\n%s\nwant\n%s", log.String(), wantLog)
	}
}

func TestGeneratorIsUser(t *testing.T) {
	if !generatorIsUser("/usr/lib/systemd/system-generators/bro-generator", "user") ||
		generatorIsUser("/usr/lib/systemd/user-generators/bro-generator", "system") {
		t.Error("SYSTEMD_SCOPE must decide")
	}
	if !generatorIsUser("/usr/local/lib/systemd/user-generators/bro-generator", "") {
		t.Error("a user-generators path is a user generator")
	}
}

func TestIdleStopAnnotation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		value, want string
		d           time.Duration
	}{
		{"90s", "", 90 * time.Second},
		{"5m", "", 5 * time.Minute},
		{"5min", "", 5 * time.Minute},
		{"1h30min", "", 90 * time.Minute},
		{"500ms", "", 500 * time.Millisecond},
		{`"1h 30s"`, "", time.Hour + 30*time.Second},
		{"soon", `invalid bro.idle-stop="soon" in %s: want a systemd time span greater than 0, such as 90s, 5min or 1h30min`, 0},
		{"-1s", `invalid bro.idle-stop="-1s" in %s: want a systemd time span greater than 0, such as 90s, 5min or 1h30min`, 0},
		{"0", `invalid bro.idle-stop="0" in %s: want a systemd time span greater than 0, such as 90s, 5min or 1h30min`, 0},
	} {
		path := filepath.Join(dir, "q.container")
		os.WriteFile(path, []byte("[Container]\nImage=x\nAnnotation=bro.activate=80 bro.idle-stop="+tc.value+"\n"), 0o644)
		c, err := quadlet.Load(path, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		d, err := idleStopAnnotation(c)
		if tc.want != "" {
			if want := fmt.Sprintf(tc.want, path); err == nil || err.Error() != want {
				t.Errorf("bro.idle-stop=%s: error %v; want %s", tc.value, err, want)
			}
			continue
		}
		if err != nil || d != tc.d {
			t.Errorf("bro.idle-stop=%s = %v, %v; want %v", tc.value, d, err, tc.d)
		}
	}
}

func TestDirectWritesStartLimitDropInAndRemoves(t *testing.T) {
	_, udir := setup(t, "[Container]\nImage=x\nAnnotation=bro.activate=127.0.0.1:7000:7\n")
	out, err := run(t, true, "--unit-dir", udir, "db")
	if err != nil {
		t.Fatal(err)
	}
	dropin := filepath.Join(udir, "db.service.d/50-db-socket-start-limit.conf")
	if !strings.Contains(out, "wrote "+dropin+"\n") {
		t.Errorf("output lacks the drop-in:\n%s", out)
	}
	if data, _ := os.ReadFile(dropin); !strings.Contains(string(data), "\nStartLimitIntervalSec=0\n") {
		t.Errorf("%s:\n%s", dropin, data)
	}
	out, err = run(t, true, "--unit-dir", udir, "--remove", "db")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed "+dropin+"\n") {
		t.Errorf("--remove output lacks the drop-in:\n%s", out)
	}
	if entries, _ := os.ReadDir(udir); len(entries) != 0 {
		t.Errorf("left after --remove: %v", entries)
	}
}

// TestForceRemovesStale: --force without --idle-stop takes away the idle-stop
// drop-in an earlier --idle-stop wrote; nothing else is touched.
func TestForceRemovesStale(t *testing.T) {
	_, udir := setup(t, "[Container]\nImage=x\nAnnotation=bro.activate=5432\n")
	dropin := filepath.Join(udir, "db.service.d", "50-db-activator-idle-stop.conf")
	if _, err := run(t, false, "--unit-dir", udir, "--idle-stop", "5min", "db"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dropin); err != nil {
		t.Fatalf("--idle-stop wrote no drop-in: %v", err)
	}
	out, err := run(t, false, "--unit-dir", udir, "--force", "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dropin); !os.IsNotExist(err) {
		t.Fatalf("after --force without --idle-stop the drop-in is still there (%v)", err)
	}
	if !strings.Contains(out, "removed "+dropin+"\n") {
		t.Errorf("output %q does not say it removed %s", out, dropin)
	}
	if _, err := os.Stat(filepath.Join(udir, "db-activator.service")); err != nil {
		t.Errorf("the activator service is gone: %v", err)
	}
}
