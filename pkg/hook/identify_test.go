package hook

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/internal/proctest"
	"github.com/brothaman/brothaman-go/pkg/record"
)

// helperEnv makes the test binary a stand-in process (see TestMain).
const helperEnv = "BRO_HOOK_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "sleep" {
		// A process whose argv the test chooses, e.g. a fake conmon.
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestUnitFromCgroup(t *testing.T) {
	tests := []struct {
		name, cgroup, want string
	}{
		{
			"v1 name=systemd in a user service",
			"12:pids:/user.slice/user-1001.slice/user@1001.service\n" +
				"9:name=systemd:/user.slice/user-1001.slice/user@1001.service/app.slice/probe.service/runtime\n" +
				"1:cpu,cpuacct:/\n",
			"probe.service",
		},
		{
			"v2 quadlet split cgroup",
			"0::/user.slice/user-1001.slice/user@1001.service/app.slice/test-postgresql.service/libpod-payload-abc\n",
			"test-postgresql.service",
		},
		{
			"v2 rootful quadlet",
			"0::/system.slice/web.service/libpod-payload-0123456789ab\n",
			"web.service",
		},
		{
			"hybrid prefers name=systemd",
			"9:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n",
			"a.service",
		},
		{
			"hybrid with the unified line first",
			"0::/system.slice/b.service\n9:name=systemd:/system.slice/a.service\n",
			"a.service",
		},
		{
			// /proc/PID/cgroup of a Podman 5.8 quadlet container on the rig
			// (cgroupfs, v1 hybrid): the container's own cgroup below runtime
			"v1 Podman 5 quadlet container",
			"9:name=systemd:/user.slice/user-1003.slice/user@1003.service/app.slice/web.service/runtime/ea7ce75a7023cc21658fafe730dc8055b274545d0a5a46470c3fd7bebf726d8f\n" +
				"8:pids:/brotest5/runtime/ea7ce75a7023cc21658fafe730dc8055b274545d0a5a46470c3fd7bebf726d8f\n" +
				"0::/user.slice/user-1003.slice/user@1003.service/app.slice/web.service/runtime\n",
			"web.service",
		},
		{"CRI-O container scope (systemd cgroup manager)", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/crio-0123456789ab.scope\n", ""},
		{"CRI-O's conmon (conmon_cgroup = system.slice)", "0::/system.slice/crio-conmon-0123456789ab.scope\n", ""},
		{"v2 root", "0::/\n", ""},
		{"v1 root", "9:name=systemd:/\n0::/\n", ""},
		{"user manager only", "0::/user.slice/user-1001.slice/user@1001.service\n", ""},
		{"user manager init scope", "0::/user.slice/user-1001.slice/user@1001.service/init.scope\n", ""},
		{"plain podman run scope", "0::/machine.slice/libpod-0123456789ab.scope/container\n", ""},
		{"user session", "0::/user.slice/user-1001.slice/session-3.scope\n", ""},
		{"v1 without name=systemd", "4:memory:/system.slice/x.service\n", ""},
		{"empty", "", ""},
		{"garbage", "not a cgroup file\n::\n", ""},
		{"no trailing newline", "0::/system.slice/db.service", "db.service"},
		{"colon in path", "0::/system.slice/a:b.service\n", "a:b.service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unitFromCgroup([]byte(tt.cgroup)); got != tt.want {
				t.Errorf("unitFromCgroup(%q) = %q; want %q", tt.cgroup, got, tt.want)
			}
		})
	}
}

func TestSystemdUnitOfSelf(t *testing.T) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := unitFromCgroup(data)
	if got := SystemdUnit(os.Getpid()); got != want {
		t.Errorf("SystemdUnit(self) = %q; want %q", got, want)
	}
	// A pid that is gone falls back to the caller's own cgroup.
	if got := SystemdUnit(proctest.Dead(t)); got != want {
		t.Errorf("SystemdUnit(dead pid) = %q; want %q", got, want)
	}
}

// storageEntry is one element of containers/storage's containers.json.
type storageEntry struct {
	ID       string            `json:"id"`
	Names    []string          `json:"names,omitempty"`
	Image    string            `json:"image"`
	Layer    string            `json:"layer"`
	Metadata string            `json:"metadata"`
	BigDataN map[string]string `json:"big-data-names,omitempty"`
	Created  string            `json:"created"`
}

// newGraphRoot lays out GRAPHROOT/overlay-containers/{containers.json,
// volatile-containers.json} and returns the graph root.
func newGraphRoot(t *testing.T, containers, volatile []storageEntry) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "overlay-containers")
	mustDo(t, os.MkdirAll(dir, 0o700))
	for name, entries := range map[string][]storageEntry{"containers.json": containers, "volatile-containers.json": volatile} {
		if entries == nil {
			continue
		}
		for _, e := range entries {
			mustDo(t, os.MkdirAll(filepath.Join(dir, e.ID, "userdata"), 0o700))
		}
		data, err := json.Marshal(entries)
		mustDo(t, err)
		mustDo(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	return root
}

func bundleOf(root, id string) string {
	return filepath.Join(root, "overlay-containers", id, "userdata")
}

func TestContainerNameFromStorage(t *testing.T) {
	const (
		quadlet = "1111111111111111111111111111111111111111111111111111111111111111"
		plain   = "2222222222222222222222222222222222222222222222222222222222222222"
		unnamed = "3333333333333333333333333333333333333333333333333333333333333333"
		rm      = "4444444444444444444444444444444444444444444444444444444444444444"
		missing = "5555555555555555555555555555555555555555555555555555555555555555"
	)
	root := newGraphRoot(t, []storageEntry{
		{ID: quadlet, Names: []string{"systemd-postgresql"}, Image: "img", Layer: "l1", Metadata: `{"image-name":"postgres"}`, Created: "2025-01-02T03:04:05Z"},
		{ID: plain, Names: []string{"web", "alias"}, Layer: "l2"},
		{ID: unnamed, Layer: "l3"},
	}, []storageEntry{
		{ID: rm, Names: []string{"scratch"}, Layer: "l4"},
	})
	crio := map[string]string{CRIOName: "k8s_db_pg-0_shop_0a1b2c3d-4e5f-6789-abcd-ef0123456789_0"}
	tests := []struct {
		name, bundle, id string
		annotations      map[string]string
		want             string
	}{
		{"quadlet ContainerName", bundleOf(root, quadlet), quadlet, nil, "systemd-postgresql"},
		{"first of several names", bundleOf(root, plain), plain, nil, "web"},
		{"bundle with a trailing slash", bundleOf(root, plain) + "/", plain, nil, "web"},
		{"no names", bundleOf(root, unnamed), unnamed, nil, ""},
		{"volatile --rm container (Podman 5: every quadlet container)", bundleOf(root, rm), rm, nil, "scratch"},
		{"not in storage", bundleOf(root, missing), missing, nil, ""},
		{"bundle elsewhere", t.TempDir(), quadlet, nil, ""},
		{"no bundle", "", quadlet, nil, ""},
		{"storage before CRI-O's annotation", bundleOf(root, plain), plain, crio, "web"},
		{"CRI-O: bundle in the run root, name in the annotations", t.TempDir(), missing, crio, crio[CRIOName]},
		{"CRI-O annotation that is no name", t.TempDir(), missing, map[string]string{CRIOName: "a\nb"}, ""},
		{"CRI-O annotation empty", t.TempDir(), missing, map[string]string{CRIOName: ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing above the test binary is conmon, so only storage and
			// the annotations can answer.
			if got := ContainerName(tt.bundle, tt.id, tt.annotations); got != tt.want {
				t.Errorf("ContainerName(%s, %s) = %q; want %q", tt.bundle, record.ShortID(tt.id), got, tt.want)
			}
		})
	}
}

func TestNameFromStorageBadFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
	}{
		{"empty", ""},
		{"truncated", `[{"id":"abc","names":["web"]`},
		{"object", `{"id":"abc","names":["web"]}`},
		{"names not strings", `[{"id":"abc","names":[1]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".json")
			mustDo(t, os.WriteFile(path, []byte(tt.content), 0o600))
			if got := nameFromStorage(path, "abc"); got != "" {
				t.Errorf("nameFromStorage(%q) = %q; want \"\"", tt.content, got)
			}
		})
	}
	if got := nameFromStorage(filepath.Join(dir, "missing.json"), "abc"); got != "" {
		t.Errorf("nameFromStorage(missing file) = %q; want \"\"", got)
	}
}

// startHelper runs the test binary as a sleeping process with the given argv
// and returns its pid; it is killed and reaped when the test ends.
func startHelper(t *testing.T, argv ...string) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Args = argv
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until the child runs the test binary with the chosen argv.
	want := strings.Join(argv, "\x00")
	deadline := time.Now().Add(5 * time.Second)
	for strings.Join(cmdline(cmd.Process.Pid), "\x00") != want {
		if time.Now().After(deadline) {
			t.Fatalf("helper %v did not start within 5s", argv)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd.Process.Pid
}

func TestNameFromConmon(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"short flags", []string{"/usr/bin/conmon", "--api-version", "1", "-c", id, "-u", id, "-n", "web", "-r", "/usr/bin/crun"}, "web"},
		{"long flags", []string{"conmon", "--cid", id, "--name", "systemd-db"}, "systemd-db"},
		{"another container", []string{"conmon", "-c", "ffff", "-n", "other"}, ""},
		{"no name", []string{"conmon", "-c", id}, ""},
		{"not conmon", []string{"/usr/bin/notconmon", "-c", id, "-n", "web"}, ""},
		{"flag without value", []string{"conmon", "-c", id, "-n"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := startHelper(t, tt.argv...)
			if got := nameFromConmon(pid, id); got != tt.want {
				t.Errorf("nameFromConmon(%v) = %q; want %q", tt.argv, got, tt.want)
			}
		})
	}
	// The test binary's ancestors include no conmon.
	if got := nameFromConmon(os.Getpid(), id); got != "" {
		t.Errorf("nameFromConmon(self) = %q; want \"\"", got)
	}
	if got := nameFromConmon(proctest.Dead(t), id); got != "" {
		t.Errorf("nameFromConmon(dead pid) = %q; want \"\"", got)
	}
}

func TestParentPID(t *testing.T) {
	if got, want := parentPID(os.Getpid()), os.Getppid(); got != want {
		t.Errorf("parentPID(self) = %d; want %d", got, want)
	}
	if got := parentPID(proctest.Dead(t)); got != 0 {
		t.Errorf("parentPID(dead pid) = %d; want 0", got)
	}
}
