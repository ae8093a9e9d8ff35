package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// podmanConfig is a config.json Podman 4.3.1 gave a precreate hook, for
// `podman run --rm --annotation bro.mode=handoff --network none
// localhost/bbox:latest true` (rootless); pkg/handoff's golden test checks
// its linux.seccomp against the machine's default profile.
const podmanConfig = "testdata/podman-config.json"

// configWith returns the fixture changed by edit (on its decoded form).
func configWith(t *testing.T, edit func(c map[string]any)) []byte {
	t.Helper()
	data, err := os.ReadFile(podmanConfig)
	mustDo(t, err)
	var c map[string]any
	mustDo(t, json.Unmarshal(data, &c))
	edit(c)
	out, err := json.Marshal(c)
	mustDo(t, err)
	return out
}

func setMode(mode string) func(map[string]any) {
	return func(c map[string]any) {
		a := c["annotations"].(map[string]any)
		a[annotation.Key] = "8080"
		if mode == "" {
			delete(a, annotation.ModeKey)
		} else {
			a[annotation.ModeKey] = mode
		}
	}
}

// agentDir is a state directory with a socket at the listener path of
// web.service, as the activator's socket unit creates it.
func agentDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bro")
	if err := os.MkdirAll(filepath.Join(dir, "handoff"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "handoff", "web.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir
}

func fixedDir(dir string) func() (string, error) { return func() (string, error) { return dir, nil } }

func noStateDir() (string, error) { return "", errors.New("state directory asked for") }

func TestPrecreatePassThrough(t *testing.T) {
	raw, err := os.ReadFile(podmanConfig)
	mustDo(t, err)
	for _, tt := range []struct {
		name   string
		config []byte
	}{
		{"no bro.mode", configWith(t, setMode(""))},
		{"proxy", configWith(t, setMode("proxy"))},
		{"direct", configWith(t, setMode("direct"))},
		{"not even json-normalised", bytes.Replace(raw, []byte(`"bro.mode":"handoff"`), []byte(`"bro.mode":"proxy"`), 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Precreate(tt.config, "", noStateDir)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.config) {
				t.Errorf("got a changed config; want the input byte for byte")
			}
		})
	}
}

func TestPrecreateHandoff(t *testing.T) {
	dir := agentDir(t)
	for _, tt := range []struct {
		name   string
		notify bool
		calls  []string
	}{
		{"bind and listen", false, []string{"bind", "listen"}},
		{"with Notify=true accept too", true, []string{"bind", "listen", "accept", "accept4"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := configWith(t, func(c map[string]any) {
				setMode("handoff")(c)
				if tt.notify {
					p := c["process"].(map[string]any)
					p["env"] = append(p["env"].([]any), "NOTIFY_SOCKET=/run/notify/notify.sock")
				}
			})
			out, err := Precreate(in, "web.service", fixedDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			var spec specs.Spec
			mustDo(t, json.Unmarshal(out, &spec))
			s := spec.Linux.Seccomp
			if want := filepath.Join(dir, "handoff", "web.sock"); s.ListenerPath != want {
				t.Errorf("listenerPath: got %q; want %q", s.ListenerPath, want)
			}
			if want := "bro-handoff unit=web.service"; s.ListenerMetadata != want {
				t.Errorf("listenerMetadata: got %q; want %q", s.ListenerMetadata, want)
			}
			last := s.Syscalls[len(s.Syscalls)-1]
			if last.Action != specs.ActNotify || !slices.Equal(last.Names, tt.calls) {
				t.Errorf("last rule: got %s %v; want %s %v", last.Action, last.Names, specs.ActNotify, tt.calls)
			}
			for _, r := range s.Syscalls[:len(s.Syscalls)-1] {
				for _, n := range tt.calls {
					if slices.Contains(r.Names, n) {
						t.Errorf("rule %s %v still names %s", r.Action, r.Names, n)
					}
				}
			}

			// Everything but linux.seccomp is as it was.
			var a, b map[string]any
			mustDo(t, json.Unmarshal(in, &a))
			mustDo(t, json.Unmarshal(out, &b))
			delete(a["linux"].(map[string]any), "seccomp")
			delete(b["linux"].(map[string]any), "seccomp")
			if !reflect.DeepEqual(a, b) {
				t.Errorf("the config changed outside linux.seccomp")
			}
		})
	}
}

func TestPrecreateErrors(t *testing.T) {
	dir := agentDir(t)
	handoff := setMode("handoff")
	seccomp := func(edit func(s map[string]any)) func(map[string]any) {
		return func(c map[string]any) {
			handoff(c)
			edit(c["linux"].(map[string]any))
		}
	}
	tests := []struct {
		name   string
		config []byte
		unit   string
		dir    string
		want   string
	}{
		{"not json", []byte("config"), "web.service", dir,
			"decode container config: invalid character 'c' looking for beginning of value"},
		{"annotations not an object", []byte(`{"annotations":[]}`), "web.service", dir,
			"decode container config: annotations: json: cannot unmarshal array into Go value of type map[string]string"},
		{"bogus mode", configWith(t, setMode("bogus")), "web.service", dir,
			`invalid bro.mode="bogus": want proxy, direct or handoff`},
		{"from a shell", configWith(t, handoff), "", dir,
			"bro.mode=handoff: the container must be started by its systemd unit (a quadlet with bro.activate), not from a shell: no agent would receive its seccomp listener"},
		{"unit name", configWith(t, handoff), "a/b.service", dir,
			`bro.mode=handoff: unit "a/b.service": want NAME.service`},
		{"no agent socket", configWith(t, handoff), "db.service", dir,
			"bro.mode=handoff: no agent socket at " + dir + "/handoff/db.sock for db.service (run bro-activate --mode handoff for it, or daemon-reload after adding bro.mode=handoff to its quadlet)"},
		{"privileged", configWith(t, seccomp(func(l map[string]any) { delete(l, "seccomp") })), "web.service", dir,
			"bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"},
		{"null filter", configWith(t, seccomp(func(l map[string]any) { l["seccomp"] = nil })), "web.service", dir,
			"bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"},
		{"no linux", []byte(`{"annotations":{"bro.activate":"80","bro.mode":"handoff"}}`), "web.service", dir,
			"bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"},
		{"listener already", configWith(t, seccomp(func(l map[string]any) { l["seccomp"].(map[string]any)["listenerPath"] = "/run/other.sock" })), "web.service", dir,
			`bro.mode=handoff: seccomp filter: has listenerPath "/run/other.sock" already; a process can have one seccomp listener`},
		{"unknown filter field", configWith(t, seccomp(func(l map[string]any) { l["seccomp"].(map[string]any)["future"] = true })), "web.service", dir,
			`bro.mode=handoff: decode linux.seccomp: json: unknown field "future"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Precreate(tt.config, tt.unit, fixedDir(tt.dir))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v; want %s", err, tt.want)
			}
			if out != nil {
				t.Errorf("got a config with the error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is more than one line")
			}
		})
	}
}

func TestReadConfig(t *testing.T) {
	big := bytes.Repeat([]byte(" "), MaxConfigSize+1)
	if _, err := ReadConfig(bytes.NewReader(big)); err == nil || err.Error() != "container config on stdin is larger than 16777216 bytes" {
		t.Errorf("got %v; want the size refused", err)
	}
	data, err := ReadConfig(strings.NewReader(`{"a":1}`))
	if err != nil || string(data) != `{"a":1}` {
		t.Errorf("got %q, %v; want the input", data, err)
	}
}

// FuzzPrecreate: no input makes Precreate panic; a config it does not refuse
// comes back byte for byte unless it is a handoff one, and then as JSON whose
// filter sends bind and listen to the agent's listener, in its last rule only.
func FuzzPrecreate(f *testing.F) {
	dir := agentDir(f)
	raw, err := os.ReadFile(podmanConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(bytes.Replace(raw, []byte(`"bro.mode":"handoff"`), []byte(`"bro.mode":"direct"`), 1))
	f.Add([]byte(`{"annotations":{"bro.mode":"handoff"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}}}`))
	f.Add([]byte(`{"annotations":{"bro.mode":"handoff"},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["bind","listen","bind"],"action":"SCMP_ACT_ALLOW"}]}}}`))
	f.Add([]byte(`{"annotations":null,"linux":null}`))
	f.Fuzz(func(t *testing.T, config []byte) {
		out, err := Precreate(config, "web.service", fixedDir(dir))
		if err != nil {
			if out != nil {
				t.Fatalf("got a config with the error %v", err)
			}
			return
		}
		var top map[string]json.RawMessage
		var ann map[string]string
		_ = json.Unmarshal(config, &top)
		_ = json.Unmarshal(top["annotations"], &ann)
		if ann[annotation.ModeKey] != annotation.ModeHandoff {
			if !bytes.Equal(out, config) {
				t.Fatalf("a config of mode %q changed", ann[annotation.ModeKey])
			}
			return
		}
		var linux map[string]json.RawMessage
		var s specs.LinuxSeccomp
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("handoff output %q: %v", out, err)
		}
		if err := json.Unmarshal(top["linux"], &linux); err != nil {
			t.Fatalf("handoff output's linux %q: %v", top["linux"], err)
		}
		if err := json.Unmarshal(linux["seccomp"], &s); err != nil {
			t.Fatalf("handoff output's linux.seccomp %q: %v", linux["seccomp"], err)
		}
		if s.ListenerPath != filepath.Join(dir, "handoff", "web.sock") {
			t.Fatalf("listenerPath: got %q", s.ListenerPath)
		}
		last := len(s.Syscalls) - 1
		for i, r := range s.Syscalls {
			named := slices.Contains(r.Names, "bind") || slices.Contains(r.Names, "listen")
			if want := i == last; named != want || (want && r.Action != specs.ActNotify) {
				t.Fatalf("rule %d of %d: %s %v", i, last+1, r.Action, r.Names)
			}
		}
	})
}
