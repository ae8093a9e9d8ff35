package handoff

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/common/pkg/seccomp"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from this machine's files")

const (
	// defaultProfilePath is the distribution's default seccomp profile
	// (containers-common), which Podman resolves into a container's filter
	// when the container names none.
	defaultProfilePath = "/usr/share/containers/seccomp.json"
	goldenFilter       = "testdata/default-seccomp.handoff.json"
	goldenInput        = "testdata/default-seccomp.sha256" // which default file the golden was made from
	// A config.json that Podman 4.3.1 gave a precreate hook on this kind of
	// machine, captured with a hook that tees its stdin, in a private
	// --hooks-dir (a hooks dir must hold nothing but hook files):
	//	podman --hooks-dir DIR run --rm --annotation bro.mode=handoff \
	//		--network none localhost/bbox:latest true
	podmanConfig = "../hook/testdata/podman-config.json"
)

// TestFilterSpecDefault applies FilterSpec to this machine's real default
// profile, resolved into the OCI form as Podman does. The golden file is
// compared only when the default file is the one it was made from (its sha256
// is recorded next to it); the rules below hold for any.
func TestFilterSpecDefault(t *testing.T) {
	body, err := os.ReadFile(defaultProfilePath)
	if os.IsNotExist(err) {
		t.Fatalf("%s: not installed (Debian: golang-github-containers-common, which podman depends on)", defaultProfilePath)
	}
	if err != nil {
		t.Fatal(err)
	}
	captured := readCapture(t)
	base, err := resolveProfile(body, captured.Process.Capabilities.Bounding)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(base, captured.Linux.Seccomp) {
		a, _ := json.Marshal(base)
		b, _ := json.Marshal(captured.Linux.Seccomp)
		t.Fatalf("%s resolved here differs from the filter Podman resolved from it in %s:\n got %s\nwant %s\n"+
			"(the default file changed since the capture, or resolveProfile no longer does what Podman does: capture a new config.json as its comment says)",
			defaultProfilePath, podmanConfig, a, b)
	}
	orig := clone(t, base)
	if err := FilterSpec(base, "/run/user/1000/bro/handoff/web.sock", "bro-handoff unit=web.service", true); err != nil {
		t.Fatal(err)
	}
	checkFilter(t, orig, base, notifiedAccept)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(base); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()

	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:]) + "  " + defaultProfilePath + "\n"
	if *update {
		if err := os.WriteFile(goldenFilter, got, 0o644); err != nil {
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
		t.Fatalf("%s is not the file %s was made from (got %s; want %s); the rules held: rerun with -update and review the diff", defaultProfilePath, goldenFilter, hash, want)
	}
	golden, err := os.ReadFile(goldenFilter)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("FilterSpec of %s differs from %s; rerun with -update and review the diff", defaultProfilePath, goldenFilter)
	}
}

func readCapture(t *testing.T) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(podmanConfig)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", podmanConfig, err)
	}
	if s.Process == nil || s.Process.Capabilities == nil || s.Linux == nil || s.Linux.Seccomp == nil {
		t.Fatalf("%s: want process.capabilities and linux.seccomp", podmanConfig)
	}
	return &s
}

// resolveProfile turns a profile file into the OCI filter of a container
// with the bounding capabilities given, on this machine's architecture. It
// does what go.podman.io/common/pkg/seccomp's LoadProfile does (setupSeccomp),
// which Podman calls; LoadProfile itself is built only with the seccomp build
// tag and cgo against libseccomp, for the native architecture's name, and
// returns "seccomp not enabled in this build" otherwise. TestFilterSpecDefault
// checks the result against the filter Podman itself resolved.
func resolveProfile(body []byte, bounding []string) (*specs.LinuxSeccomp, error) {
	var p seccomp.Seccomp
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile failed: %w", err)
	}
	if p.DefaultAction == "" && len(p.Syscalls) == 0 {
		return nil, nil
	}
	native := map[string]seccomp.Arch{"amd64": seccomp.ArchX86_64, "arm64": seccomp.ArchAARCH64, "s390x": seccomp.ArchS390X}[runtime.GOARCH]
	arch := runtime.GOARCH // libseccomp's name of the native architecture, for these three
	out := &specs.LinuxSeccomp{ListenerPath: p.ListenerPath, ListenerMetadata: p.ListenerMetadata}
	for _, a := range p.Architectures {
		out.Architectures = append(out.Architectures, specs.Arch(a))
	}
	for _, f := range p.Flags {
		out.Flags = append(out.Flags, specs.LinuxSeccompFlag(f))
	}
	for _, m := range p.ArchMap {
		if m.Arch == native {
			out.Architectures = append(out.Architectures, specs.Arch(m.Arch))
			for _, sa := range m.SubArches {
				out.Architectures = append(out.Architectures, specs.Arch(sa))
			}
			break
		}
	}
	out.DefaultAction = specs.LinuxSeccompAction(p.DefaultAction)
	var err error
	if out.DefaultErrnoRet, err = profileErrno(p.DefaultErrno, p.DefaultErrnoRet); err != nil {
		return nil, err
	}
	hasAny := func(caps []string) bool {
		return slices.ContainsFunc(caps, func(c string) bool { return slices.Contains(bounding, c) })
	}
	hasAll := func(caps []string) bool {
		return !slices.ContainsFunc(caps, func(c string) bool { return !slices.Contains(bounding, c) })
	}
	for _, c := range p.Syscalls {
		if slices.Contains(c.Excludes.Arches, arch) || hasAny(c.Excludes.Caps) {
			continue
		}
		if (len(c.Includes.Arches) > 0 && !slices.Contains(c.Includes.Arches, arch)) || !hasAll(c.Includes.Caps) {
			continue
		}
		errno, err := profileErrno(c.Errno, c.ErrnoRet)
		if err != nil {
			return nil, err
		}
		for _, names := range [][]string{{c.Name}, c.Names} {
			if len(names) == 0 || names[0] == "" {
				continue
			}
			r := specs.LinuxSyscall{Names: names, Action: specs.LinuxSeccompAction(c.Action), ErrnoRet: errno}
			for _, a := range c.Args {
				r.Args = append(r.Args, specs.LinuxSeccompArg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: specs.LinuxSeccompOperator(a.Op)})
			}
			out.Syscalls = append(out.Syscalls, r)
		}
	}
	return out, nil
}

// profileErrno is containers/common's getErrno: a name or number wins over def.
func profileErrno(name string, def *uint) (*uint, error) {
	if name == "" {
		return def, nil
	}
	if v, err := strconv.ParseUint(name, 10, 32); err == nil {
		u := uint(v)
		return &u, nil
	}
	for e := syscall.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			u := uint(e)
			return &u, nil
		}
	}
	return nil, fmt.Errorf("unknown errno %s", name)
}

func clone(t *testing.T, s *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var c specs.LinuxSeccomp
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// checkFilter asserts what must hold for any base: the calls leave every rule
// but one NOTIFY rule, the listener is set, and nothing else changes.
func checkFilter(t *testing.T, base, got *specs.LinuxSeccomp, calls []string) {
	t.Helper()
	if got.ListenerPath != "/run/user/1000/bro/handoff/web.sock" || got.ListenerMetadata != "bro-handoff unit=web.service" {
		t.Errorf("listener: got %q, %q; want the path and metadata given", got.ListenerPath, got.ListenerMetadata)
	}
	for _, name := range calls {
		var actions []specs.LinuxSeccompAction
		for _, r := range got.Syscalls {
			if slices.Contains(r.Names, name) {
				actions = append(actions, r.Action)
			}
		}
		if !slices.Equal(actions, []specs.LinuxSeccompAction{specs.ActNotify}) {
			t.Errorf("rules naming %s: got actions %v; want [%s]", name, actions, specs.ActNotify)
		}
	}
	// Undo the change by hand and compare with base.
	undo := clone(t, got)
	undo.ListenerPath, undo.ListenerMetadata = "", ""
	strip := func(rules []specs.LinuxSyscall) []specs.LinuxSyscall {
		var kept []specs.LinuxSyscall
		for _, r := range rules {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(calls, n) })
			if r.Action != specs.ActNotify && len(r.Names) > 0 {
				kept = append(kept, r)
			}
		}
		return kept
	}
	b := clone(t, base)
	b.Syscalls, undo.Syscalls = strip(b.Syscalls), strip(undo.Syscalls)
	if !reflect.DeepEqual(b, undo) {
		t.Errorf("the result differs from the base in more than %s and the listener", strings.Join(calls, ", "))
	}
}

// names is each rule's names joined by commas, in order.
func names(s *specs.LinuxSeccomp) []string {
	var out []string
	for _, r := range s.Syscalls {
		out = append(out, strings.Join(r.Names, ","))
	}
	return out
}

func allow(n ...string) specs.LinuxSyscall {
	return specs.LinuxSyscall{Names: n, Action: specs.ActAllow}
}

func TestFilterSpec(t *testing.T) {
	errno := uint(1)
	tests := []struct {
		name   string
		filter specs.LinuxSeccomp
		accept bool
		want   []string // the names of each rule of the result, in order
	}{
		{"names", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			allow("accept", "bind", "listen", "read")}},
			false, []string{"accept,read", "bind,listen"}},
		{"accept", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			allow("accept", "accept4", "bind", "listen", "read")}},
			true, []string{"read", "bind,listen,accept,accept4"}},
		{"rules left empty disappear", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			allow("bind"), allow("listen"), allow("read"), allow("bind")}},
			false, []string{"read", "bind,listen"}},
		{"allowed by default", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"ptrace"}, Action: specs.ActErrno, ErrnoRet: &errno}}},
			true, []string{"ptrace", "bind,listen,accept,accept4"}},
		{"logged by default", specs.LinuxSeccomp{DefaultAction: specs.ActLog},
			false, []string{"bind,listen"}},
		{"other rules kept, conditions and all", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			allow("bind", "listen"),
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}}}},
			false, []string{"personality", "bind,listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.filter
			if err := FilterSpec(&s, "/run/user/1000/bro/handoff/web.sock", "bro-handoff unit=web.service", tt.accept); err != nil {
				t.Fatal(err)
			}
			if got := names(&s); !slices.Equal(got, tt.want) {
				t.Errorf("rules: got %q; want %q", got, tt.want)
			}
			if last := s.Syscalls[len(s.Syscalls)-1]; last.Action != specs.ActNotify || last.Args != nil || last.ErrnoRet != nil {
				t.Errorf("last rule: got %+v; want a plain %s rule", last, specs.ActNotify)
			}
			calls := notified
			if tt.accept {
				calls = notifiedAccept
			}
			checkFilter(t, &tt.filter, &s, calls)
		})
	}
}

func TestFilterSpecErrors(t *testing.T) {
	both := allow("bind", "listen", "accept", "accept4")
	tests := []struct {
		name   string
		filter *specs.LinuxSeccomp
		path   string
		accept bool
		want   string
	}{
		{"no filter", nil, "/run/a.sock", false,
			"the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"},
		{"relative listener", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{both}}, "agent.sock", false,
			`seccomp listener path "agent.sock": must be absolute`},
		{"listener already", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, ListenerPath: "/run/other.sock", Syscalls: []specs.LinuxSyscall{both}}, "/run/a.sock", false,
			`seccomp filter: has listenerPath "/run/other.sock" already; a process can have one seccomp listener`},
		{"conditional allow", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{both,
			{Names: []string{"read", "bind"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 3, Op: specs.OpEqualTo}}}}}, "/run/a.sock", false,
			`seccomp filter: rule 1 (SCMP_ACT_ALLOW with 1 argument conditions) names [bind]: only an unconditional SCMP_ACT_ALLOW rule can become a notification`},
		{"denied", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"listen"}, Action: specs.ActErrno}}}, "/run/a.sock", false,
			`seccomp filter: rule 0 (SCMP_ACT_ERRNO) names [listen]: only an unconditional SCMP_ACT_ALLOW rule can become a notification`},
		{"notify already", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow("bind", "listen", "accept"),
			{Names: []string{"accept4"}, Action: specs.ActNotify}}}, "/run/a.sock", true,
			`seccomp filter: rule 1 (SCMP_ACT_NOTIFY) names [accept4]: only an unconditional SCMP_ACT_ALLOW rule can become a notification`},
		{"not allowed", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{allow("listen")}}, "/run/a.sock", false,
			`seccomp filter: bind is not allowed (default action SCMP_ACT_ERRNO); notifying it would let the agent allow it`},
		{"accept not allowed", &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{allow("bind", "listen", "accept")}}, "/run/a.sock", true,
			`seccomp filter: accept4 is not allowed (default action SCMP_ACT_KILL_PROCESS); notifying it would let the agent allow it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *specs.LinuxSeccomp
			if tt.filter != nil {
				before = clone(t, tt.filter)
			}
			err := FilterSpec(tt.filter, tt.path, "bro-handoff unit=web.service", tt.accept)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v; want %s", err, tt.want)
			}
			if tt.filter == nil && !errors.Is(err, ErrNoFilter) {
				t.Errorf("got %v; want ErrNoFilter", err)
			}
			if tt.filter != nil && !reflect.DeepEqual(before, clone(t, tt.filter)) {
				t.Errorf("the filter changed although FilterSpec failed")
			}
		})
	}
}
