package handoff

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"go.podman.io/common/pkg/seccomp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from this machine's files")

const (
	goldenProfile = "testdata/default-seccomp.handoff.json"
	goldenInput   = "testdata/default-seccomp.sha256" // which default file the golden was made from
)

// TestProfileDefault transforms this machine's real default profile. The
// golden file is compared only when the default file is the one it was made
// from (its sha256 is recorded next to it); the rules below hold for any.
func TestProfileDefault(t *testing.T) {
	base, err := os.ReadFile(DefaultProfilePath)
	if os.IsNotExist(err) {
		t.Fatalf("%s: not installed (Debian: golang-github-containers-common, which podman depends on)", DefaultProfilePath)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := Profile(base, "/run/user/1000/brothaman/handoff.sock", "bro-handoff")
	if err != nil {
		t.Fatal(err)
	}
	checkProfile(t, base, got)

	sum := sha256.Sum256(base)
	hash := hex.EncodeToString(sum[:]) + "  " + DefaultProfilePath + "\n"
	if *update {
		if err := os.WriteFile(goldenProfile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenInput, []byte(hash), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenInput)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != hash {
		t.Fatalf("%s is not the file %s was made from (got %s; want %s); the rules held: rerun with -update and review the diff", DefaultProfilePath, goldenProfile, hash, want)
	}
	golden, err := os.ReadFile(goldenProfile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("Profile(%s) differs from %s; rerun with -update and review the diff", DefaultProfilePath, goldenProfile)
	}
}

// checkProfile asserts what must hold for any base: bind and listen leave
// every rule but one NOTIFY rule, the listener is set, and nothing else
// changes (compared as decoded JSON, so formatting does not matter).
func checkProfile(t *testing.T, base, got []byte) {
	t.Helper()
	var p seccomp.Seccomp
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode the result: %v", err)
	}
	if p.ListenerPath != "/run/user/1000/brothaman/handoff.sock" || p.ListenerMetadata != "bro-handoff" {
		t.Errorf("listener: got %q, %q; want the path and metadata given", p.ListenerPath, p.ListenerMetadata)
	}
	for _, name := range notified {
		var actions []seccomp.Action
		for _, r := range p.Syscalls {
			if r.Name == name || slices.Contains(r.Names, name) {
				actions = append(actions, r.Action)
			}
		}
		if !slices.Equal(actions, []seccomp.Action{seccomp.ActNotify}) {
			t.Errorf("rules naming %s: got actions %v; want [%s]", name, actions, seccomp.ActNotify)
		}
	}

	// Undo the change by hand and compare with base.
	var in, out map[string]any
	if err := json.Unmarshal(base, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &out); err != nil {
		t.Fatal(err)
	}
	delete(out, "listenerPath")
	delete(out, "listenerMetadata")
	strip := func(rules []any) []any {
		var kept []any
		for _, r := range rules {
			m := r.(map[string]any)
			if m["action"] == string(seccomp.ActNotify) {
				continue
			}
			if names, ok := m["names"].([]any); ok {
				m["names"] = slices.DeleteFunc(names, func(n any) bool { return slices.Contains(notified, n.(string)) })
			}
			kept = append(kept, m)
		}
		return kept
	}
	in["syscalls"], out["syscalls"] = strip(in["syscalls"].([]any)), strip(out["syscalls"].([]any))
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if !bytes.Equal(a, b) {
		t.Errorf("the result differs from the base in more than bind, listen and the listener")
	}
}

func TestProfile(t *testing.T) {
	tests := []struct {
		name string
		base string
		want []string // the names of each rule of the result, in order
	}{
		{"names", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
			{"names":["accept","bind","listen","read"],"action":"SCMP_ACT_ALLOW","args":[],"comment":"","includes":{},"excludes":{}}]}`,
			[]string{"accept,read", "bind,listen"}},
		{"single name rules disappear", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
			{"name":"bind","action":"SCMP_ACT_ALLOW","args":[]},
			{"names":["listen"],"action":"SCMP_ACT_ALLOW","args":[]},
			{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[]}]}`,
			[]string{"read", "bind,listen"}},
		{"allowed by default", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
			{"names":["ptrace"],"action":"SCMP_ACT_ERRNO","args":[]}]}`,
			[]string{"ptrace", "bind,listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Profile([]byte(tt.base), "/run/agent.sock", "")
			if err != nil {
				t.Fatal(err)
			}
			var p seccomp.Seccomp
			if err := json.Unmarshal(out, &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Syscalls {
				got = append(got, r.Name+strings.Join(r.Names, ","))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rules: got %q; want %q", got, tt.want)
			}
			if last := p.Syscalls[len(p.Syscalls)-1]; last.Action != seccomp.ActNotify {
				t.Errorf("last rule: got action %s; want %s", last.Action, seccomp.ActNotify)
			}
		})
	}
}

func TestProfileErrors(t *testing.T) {
	allow := `{"names":["bind","listen"],"action":"SCMP_ACT_ALLOW","args":[]}`
	tests := []struct {
		name, base, path, want string
	}{
		{"relative listener", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[` + allow + `]}`, "agent.sock",
			`seccomp listener path "agent.sock": must be absolute`},
		{"not json", `seccomp`, "/run/a.sock",
			`seccomp profile: invalid character 's' looking for beginning of value`},
		{"unknown field", `{"defaultAction":"SCMP_ACT_ERRNO","future":1,"syscalls":[]}`, "/run/a.sock",
			`seccomp profile: json: unknown field "future"`},
		{"listener already", `{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/other.sock","syscalls":[` + allow + `]}`, "/run/a.sock",
			`seccomp profile: has listenerPath "/run/other.sock" already`},
		{"conditional allow", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[` + allow + `,
			{"names":["bind"],"action":"SCMP_ACT_ALLOW","args":[],"comment":"x","includes":{"caps":["CAP_NET_ADMIN"]}}]}`, "/run/a.sock",
			`seccomp profile: rule 1 (action SCMP_ACT_ALLOW, comment "x") names [bind]; only an unconditional SCMP_ACT_ALLOW rule can be turned into a notification`},
		{"denied", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["listen"],"action":"SCMP_ACT_ERRNO","args":[]}]}`, "/run/a.sock",
			`seccomp profile: rule 0 (action SCMP_ACT_ERRNO, comment "") names [listen]; only an unconditional SCMP_ACT_ALLOW rule can be turned into a notification`},
		{"not allowed", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["listen"],"action":"SCMP_ACT_ALLOW","args":[]}]}`, "/run/a.sock",
			`seccomp profile: bind is not allowed; notifying it would let the agent allow it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Profile([]byte(tt.base), tt.path, "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v; want %s", err, tt.want)
			}
		})
	}
}
