package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/internal/proctest"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/record"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// newStateDir opens a fresh state directory under t.TempDir.
func newStateDir(t *testing.T) *record.StateDir {
	t.Helper()
	d, err := record.OpenStateDir(filepath.Join(t.TempDir(), "bro"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	mustDo(t, err)
	mustDo(t, os.WriteFile(path, data, 0o600))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func stateFor(id string, pid int, value string) *State {
	s := &State{specs.State{Version: specs.Version, ID: id, Status: specs.StateCreated, Pid: pid}}
	if value != "" {
		s.Annotations = map[string]string{annotation.Key: value, "io.container.manager": "libpod"}
	}
	return s
}

func TestNewRecord(t *testing.T) {
	pid := proctest.Sleeper(t, true)
	start, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	mustDo(t, unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st))

	// A bundle in containers/storage's layout, with a config.json that names
	// the netns Podman made, as for bridge and slirp4netns networks.
	root := newGraphRoot(t, []storageEntry{{ID: testID, Names: []string{"systemd-web"}}}, nil)
	withNetNSPath := bundleOf(root, testID)
	writeJSON(t, filepath.Join(withNetNSPath, "config.json"), specs.Spec{Version: specs.Version, Linux: &specs.Linux{
		Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/netns/netns-test"}},
	}})
	// A config.json that lets the runtime create the netns: no path.
	withoutPath := t.TempDir()
	writeJSON(t, filepath.Join(withoutPath, "config.json"), specs.Spec{Linux: &specs.Linux{
		Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}},
	}})
	broken := t.TempDir()
	mustDo(t, os.WriteFile(filepath.Join(broken, "config.json"), []byte("{"), 0o600))

	procPath := fmt.Sprintf("/proc/%d/ns/net", pid)
	tests := []struct {
		name, bundle, wantNetNS, wantName string
	}{
		{"no bundle", "", procPath, ""},
		{"bundle with a netns path", withNetNSPath, "/run/netns/netns-test", "systemd-web"},
		{"bundle without a netns path", withoutPath, procPath, ""},
		{"bundle with a broken config", broken, procPath, ""},
		{"bundle that does not exist", filepath.Join(t.TempDir(), "gone"), procPath, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stateFor(testID, pid, "5432, 8080:80/udp")
			s.Bundle = tt.bundle
			before := time.Now().UTC()
			r, err := NewRecord(s, 1001)
			if err != nil {
				t.Fatalf("NewRecord: %v", err)
			}
			want := &record.Record{
				Version:    record.Version,
				ID:         testID,
				Name:       tt.wantName,
				Unit:       SystemdUnit(pid),
				PID:        pid,
				PIDStart:   start,
				NetNS:      tt.wantNetNS,
				NetNSDev:   st.Dev,
				NetNSIno:   st.Ino,
				UID:        1001,
				Annotation: "5432, 8080:80/udp",
				Ports: []annotation.Port{
					{ListenIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5432, ContainerPort: 5432, Proto: "tcp"},
					{ListenIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Proto: "udp"},
				},
				Created: r.Created,
			}
			if !reflect.DeepEqual(r, want) {
				t.Errorf("NewRecord =\n %+v\nwant\n %+v", r, want)
			}
			if r.Created.Before(before) || r.Created.After(time.Now().UTC()) || r.Created.Location() != time.UTC {
				t.Errorf("Created = %v; want a UTC time during the call", r.Created)
			}
			if !r.Alive() {
				t.Errorf("Alive() of the new record = false; want true")
			}
			// The record survives a round trip through the state directory.
			d := newStateDir(t)
			mustDo(t, d.Write(r))
			got, err := d.Read(testID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("Read = %+v; want %+v", got, r)
			}
		})
	}
}

func TestNewRecordErrors(t *testing.T) {
	hostPID := proctest.Sleeper(t, false)
	gone := proctest.Dead(t)
	shortID := testID[:12]
	tests := []struct {
		name  string
		state *State
		want  string
		is    error
	}{
		{
			name:  "host network namespace",
			state: stateFor(testID, hostPID, "8080"),
			want:  "container " + shortID + " shares the host's network namespace (Network=host?): bro.activate needs a container with its own",
		},
		{
			name:  "the hook's own process",
			state: stateFor("abc", os.Getpid(), "8080"),
			want:  "container abc shares the host's network namespace (Network=host?): bro.activate needs a container with its own",
		},
		{
			name:  "pid 0",
			state: stateFor(testID, 0, "8080"),
			want:  "container " + shortID + ": state has no pid (stage must be prestart or createRuntime)",
		},
		{
			name:  "negative pid",
			state: stateFor(testID, -5, "8080"),
			want:  "container " + shortID + ": state has no pid (stage must be prestart or createRuntime)",
		},
		{
			name:  "dead pid",
			state: stateFor(testID, gone, "8080"),
			want:  fmt.Sprintf("container %s: process %d is gone: read start time of pid %d: open /proc/%d/stat: no such file or directory", shortID, gone, gone, gone),
			is:    os.ErrNotExist,
		},
		{
			name:  "no annotation",
			state: stateFor(testID, hostPID, ""),
			want:  "container has no bro.activate annotation",
			is:    ErrNoAnnotation,
		},
		{
			name:  "other annotations only",
			state: &State{specs.State{ID: testID, Pid: hostPID, Annotations: map[string]string{"bro.activate.extra": "1"}}},
			want:  "container has no bro.activate annotation",
			is:    ErrNoAnnotation,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRecord(tt.state, 0)
			if err == nil {
				t.Fatalf("NewRecord = %+v; want error %q", r, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("NewRecord error\n got %s\nwant %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("NewRecord error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestNewRecordMalformedAnnotation(t *testing.T) {
	// The annotation is checked first: Podman shows this error to the user
	// whatever else is wrong with the state.
	for _, pid := range []int{0, os.Getpid()} {
		for _, value := range []string{"", "abc", "0", "5432,5432", "[::1]:80"} {
			t.Run(fmt.Sprintf("%q pid %d", value, pid), func(t *testing.T) {
				s := &State{specs.State{ID: testID, Pid: pid, Annotations: map[string]string{annotation.Key: value}}}
				_, err := NewRecord(s, 0)
				var ae *annotation.Error
				if !errors.As(err, &ae) {
					t.Fatalf("NewRecord(%q) error %v (%T); want an *annotation.Error", value, err, err)
				}
				if ae.Value != value {
					t.Errorf("annotation.Error.Value = %q; want %q", ae.Value, value)
				}
				if _, perr := annotation.ParsePorts(value); perr == nil || err.Error() != perr.Error() {
					t.Errorf("NewRecord error %q; want ParsePorts's %q", err, perr)
				}
			})
		}
	}
}
