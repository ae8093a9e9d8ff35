package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/internal/proctest"
	"github.com/brothaman/brothaman-go/pkg/hook"
	"github.com/brothaman/brothaman-go/pkg/record"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/common/pkg/hooks"
	"golang.org/x/sys/unix"
)

// A Kubernetes node with CRI-O (docs/kubernetes.md): the pod's annotations
// carry bro.activate. CRI-O copies the pod sandbox's annotations into every
// container's config.json, matches hooks.d's when.annotations against the
// pod's and the container's annotations together, and runc hands the hook
// the OCI state with the config's annotations. What differs from Podman:
// the bundle is in the run root, beside no containers.json; the name is in
// the annotation io.kubernetes.cri-o.Name; the network namespace is the
// pod's, pinned by CRI-O and named in config.json; the container's cgroup is
// a crio-ID.scope, no unit. The annotations below are a subset of those
// CRI-O writes (internal/factory/container: the sandbox's, then its own,
// then kubelet's annotations and labels).

const crioID = "a1f0c3d2e5b4a7968d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e"

// crioPodAnnotations are the pod's own (metadata.annotations) as kubelet
// passes them to the sandbox and CRI-O passes them on to each container.
var crioPodAnnotations = map[string]string{
	"bro.activate":                  "127.0.0.1:15432:5432",
	"kubernetes.io/config.seen":     "2026-12-02T14:00:00.000000000Z",
	"kubernetes.io/config.source":   "api",
	"io.kubernetes.cri-o.SandboxID": "5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c",
}

// crioConfig is the config.json CRI-O writes for container "db" of pod
// "pg-0" in namespace "shop", the pod's netns pinned at netnsPath.
func crioConfig(netnsPath string) rspec.Spec {
	a := map[string]string{
		"io.container.manager":                     "cri-o",
		"io.kubernetes.container.hash":             "6f1c2b3a",
		"io.kubernetes.container.name":             "db",
		"io.kubernetes.container.restartCount":     "0",
		"io.kubernetes.cri-o.ContainerID":          crioID,
		"io.kubernetes.cri-o.ContainerType":        "container",
		"io.kubernetes.cri-o.Name":                 "k8s_db_pg-0_shop_0a1b2c3d-4e5f-6789-abcd-ef0123456789_0",
		"io.kubernetes.cri-o.SandboxName":          "k8s_pg-0_shop_0a1b2c3d-4e5f-6789-abcd-ef0123456789_0",
		"io.kubernetes.cri-o.Metadata":             `{"name":"db"}`,
		"io.kubernetes.cri-o.Annotations":          `{"io.kubernetes.container.hash":"6f1c2b3a","io.kubernetes.container.restartCount":"0"}`,
		"io.kubernetes.cri-o.Created":              "2026-12-02T14:00:01.000000000Z",
		"io.kubernetes.pod.name":                   "pg-0",
		"io.kubernetes.pod.namespace":              "shop",
		"io.kubernetes.pod.terminationGracePeriod": "30",
		"io.kubernetes.pod.uid":                    "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
		"org.opencontainers.image.stopSignal":      "15",
	}
	for k, v := range crioPodAnnotations {
		a[k] = v
	}
	return rspec.Spec{
		Version:     "1.0.2-dev",
		Process:     &rspec.Process{Args: []string{"postgres"}},
		Annotations: a,
		Linux: &rspec.Linux{
			CgroupsPath: "kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice:crio:" + crioID,
			Namespaces: []rspec.LinuxNamespace{
				{Type: rspec.PIDNamespace}, {Type: rspec.IPCNamespace, Path: "/var/run/ipcns/0f1e2d3c"},
				{Type: rspec.UTSNamespace, Path: "/var/run/utsns/0f1e2d3c"},
				{Type: rspec.NetworkNamespace, Path: netnsPath}, {Type: rspec.MountNamespace},
			},
		},
	}
}

// TestHookCRIOContainer: the hooks.d file matches a container whose pod
// carries bro.activate, and bro-hook, fed the state and bundle CRI-O's runc
// would give it, records the container: its CRI-O name, the pod's network
// namespace, the pod annotation's ports, and no unit. Poststop removes it.
func TestHookCRIOContainer(t *testing.T) {
	// the pod's network namespace: a throwaway one. CRI-O pins it at
	// /var/run/netns/UUID; the sleeper's /proc/PID/ns/net stands in for it.
	pid := proctest.Sleeper(t, true)
	netnsPath := fmt.Sprintf("/proc/%d/ns/net", pid)
	var st unix.Stat_t
	if err := unix.Stat(netnsPath, &st); err != nil {
		t.Fatal(err)
	}
	start, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}

	// the run root's layout; the graph root (with containers.json) is elsewhere
	root := t.TempDir()
	bundle := filepath.Join(root, "run/containers/storage/overlay-containers", crioID, "userdata")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	config := crioConfig(netnsPath)
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}

	// CRI-O's hook manager matches when.annotations against the container's
	// (kubelet's) annotations and the pod's together
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h, err := hooks.Read(renderHookConfig(t, self, "prestart"), nil)
	if err != nil {
		t.Fatalf("hooks.Read: %v", err)
	}
	matched := map[string]string{"io.kubernetes.container.hash": "6f1c2b3a"}
	for k, v := range crioPodAnnotations {
		matched[k] = v
	}
	if ok, err := h.When.Match(&config, matched, false); err != nil || !ok {
		t.Fatalf("the hooks.d file does not match a CRI-O container of an annotated pod: %v, %v", ok, err)
	}

	// runc runs prestart (createRuntime) hooks with status "creating" and
	// the config's annotations in the state
	state, err := json.Marshal(rspec.State{Version: "1.0.2-dev", ID: crioID, Status: rspec.StateCreating,
		Pid: pid, Bundle: bundle, Annotations: config.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "bro")
	for _, stage := range []string{"prestart", "createRuntime"} {
		t.Run(stage, func(t *testing.T) {
			if res := runHook(t, stateDir, state, stage); res.code != 0 || res.stderr != "" {
				t.Fatalf("bro-hook %s: exit %d, stderr %q; want 0 and nothing", stage, res.code, res.stderr)
			}
			dir, err := record.OpenStateDir(stateDir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer dir.Close()
			got, err := dir.Read(crioID)
			if err != nil {
				t.Fatalf("read the record: %v", err)
			}
			uid, err := record.HostUID()
			if err != nil {
				t.Fatal(err)
			}
			want := &record.Record{
				Version: record.Version, ID: crioID,
				Name: "k8s_db_pg-0_shop_0a1b2c3d-4e5f-6789-abcd-ef0123456789_0",
				Unit: hook.SystemdUnit(pid), // the test's own cgroup; a CRI-O container's scope gives ""
				PID:  pid, PIDStart: start,
				NetNS: netnsPath, NetNSDev: st.Dev, NetNSIno: st.Ino,
				UID:        uid,
				Annotation: "127.0.0.1:15432:5432",
				Ports:      got.Ports,
				Created:    got.Created,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("record =\n %+v\nwant\n %+v", got, want)
			}
			if len(got.Ports) != 1 || got.Ports[0].String() != "127.0.0.1:15432:5432/tcp" {
				t.Errorf("ports = %v; want [127.0.0.1:15432:5432/tcp]", got.Ports)
			}
			if got, want := got.Matches("k8s_db_pg-0_shop_0a1b2c3d-4e5f-6789-abcd-ef0123456789_0"), true; got != want {
				t.Errorf("Matches(CRI-O name) = %v; want %v", got, want)
			}
		})
	}

	// poststop: runc gives pid 0 once the process is gone
	gone, err := json.Marshal(rspec.State{Version: "1.0.2-dev", ID: crioID, Status: rspec.StateStopped,
		Bundle: bundle, Annotations: config.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	if res := runHook(t, stateDir, gone, "poststop"); res.code != 0 {
		t.Fatalf("bro-hook poststop: exit %d, stderr %q", res.code, res.stderr)
	}
	if files := dirFiles(t, stateDir); len(files) != 0 {
		t.Errorf("state directory after poststop = %v; want empty", files)
	}
}
