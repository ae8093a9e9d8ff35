package handoff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.podman.io/common/pkg/seccomp"
)

// DefaultProfilePath is the distribution's default seccomp profile
// (containers-common). Podman applies it when a container names none; a
// handoff profile is derived from it at run time and never shipped.
const DefaultProfilePath = "/usr/share/containers/seccomp.json"

// notified are the system calls a handoff profile sends to the agent: bind to
// hand over the host socket, listen so that the server's backlog does not
// replace the host socket's.
var notified = []string{"bind", "listen"}

// DefaultProfile is Profile of the file at DefaultProfilePath.
func DefaultProfile(listenerPath, listenerMetadata string) ([]byte, error) {
	base, err := os.ReadFile(DefaultProfilePath)
	if err != nil {
		return nil, fmt.Errorf("read the default seccomp profile: %w", err)
	}
	return Profile(base, listenerPath, listenerMetadata)
}

// Profile returns base, a seccomp profile in containers/common's format, with
// bind and listen taken out of the ALLOW rules that name them and given to
// one SCMP_ACT_NOTIFY rule, and with listenerPath and listenerMetadata set.
// Podman copies both into the OCI spec; runc then sends the container's
// listener to the agent at listenerPath. Everything else is kept as it was.
//
// The names must leave the ALLOW rule: libseccomp refuses a second rule for
// a system call ("file exists"). Notifying is safe only where base allows the
// call outright, since the agent lets every call it does not take continue.
//
// Errors: base is not a profile (or has a field this package does not know,
// which it would drop); listenerPath is not absolute, or base has one
// already; a notified call is named by a rule that is not an unconditional
// ALLOW, or is not allowed at all.
func Profile(base []byte, listenerPath, listenerMetadata string) ([]byte, error) {
	if !filepath.IsAbs(listenerPath) {
		return nil, fmt.Errorf("seccomp listener path %q: must be absolute", listenerPath)
	}
	var p seccomp.Seccomp
	dec := json.NewDecoder(bytes.NewReader(base))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if p.ListenerPath != "" {
		return nil, fmt.Errorf("seccomp profile: has listenerPath %q already", p.ListenerPath)
	}
	allowed := map[string]bool{}
	if p.DefaultAction == seccomp.ActAllow || p.DefaultAction == seccomp.ActLog {
		for _, name := range notified {
			allowed[name] = true
		}
	}
	rules := p.Syscalls[:0]
	for i, r := range p.Syscalls {
		names := r.Names
		if r.Name != "" {
			names = append([]string{r.Name}, names...)
		}
		keep := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(notified, n) })
		if len(keep) == len(names) {
			rules = append(rules, r)
			continue
		}
		if r.Action != seccomp.ActAllow || !unconditional(r) {
			return nil, fmt.Errorf("seccomp profile: rule %d (action %s, comment %q) names %v; only an unconditional SCMP_ACT_ALLOW rule can be turned into a notification",
				i, r.Action, r.Comment, intersect(names, notified))
		}
		for _, n := range intersect(names, notified) {
			allowed[n] = true
		}
		if len(keep) == 0 {
			continue
		}
		r.Name, r.Names = "", keep
		rules = append(rules, r)
	}
	for _, n := range notified {
		if !allowed[n] {
			return nil, fmt.Errorf("seccomp profile: %s is not allowed; notifying it would let the agent allow it", n)
		}
	}
	p.Syscalls = append(rules, &seccomp.Syscall{
		Names:   slices.Clone(notified),
		Action:  seccomp.ActNotify,
		Args:    []*seccomp.Arg{},
		Comment: "brothaman handoff: bind() may receive a host socket; listen() on it keeps the host's backlog",
	})
	p.ListenerPath = listenerPath
	p.ListenerMetadata = listenerMetadata
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "\t")
	if err := enc.Encode(&p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	return out.Bytes(), nil
}

func unconditional(r *seccomp.Syscall) bool {
	return len(r.Args) == 0 &&
		len(r.Includes.Caps) == 0 && len(r.Includes.Arches) == 0 &&
		len(r.Excludes.Caps) == 0 && len(r.Excludes.Arches) == 0
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
