package handoff

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The system calls a handoff filter sends to the agent: bind to hand over the
// host socket, listen so that the server's backlog does not replace the host
// socket's; with accept, accept and accept4 too, so that the agent can hold a
// server's accept() of a host socket until its unit is ready.
var (
	notified       = []string{"bind", "listen"}
	notifiedAccept = []string{"bind", "listen", "accept", "accept4"}
)

// ErrNoFilter is returned by FilterSpec for a container without a seccomp
// filter.
var ErrNoFilter = errors.New("the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)")

// FilterSpec turns s, a container's seccomp filter in the OCI form (as
// Podman resolved it into config.json: its default profile or the user's),
// into a handoff filter: bind and listen, and with accept also accept and
// accept4, are taken out of the SCMP_ACT_ALLOW rules that name them and given
// to one SCMP_ACT_NOTIFY rule at the end, and ListenerPath and
// ListenerMetadata are set. runc then sends the container's listener to the
// agent at listenerPath. Nothing else changes; on error s is unchanged.
//
// The names must leave the ALLOW rules: libseccomp refuses a second rule for
// a system call ("file exists"). Notifying is safe only where s allows the
// call outright, since the agent lets every call it does not take continue.
//
// Errors: ErrNoFilter for a nil s; listenerPath is not absolute; s has a
// listenerPath already (a process can have one listener); a notified call is
// named by a rule that is not an unconditional SCMP_ACT_ALLOW (it has args,
// or another action), or is not allowed at all.
func FilterSpec(s *specs.LinuxSeccomp, listenerPath, metadata string, accept bool) error {
	if s == nil {
		return ErrNoFilter
	}
	if !filepath.IsAbs(listenerPath) {
		return fmt.Errorf("seccomp listener path %q: must be absolute", listenerPath)
	}
	if s.ListenerPath != "" {
		return fmt.Errorf("seccomp filter: has listenerPath %q already; a process can have one seccomp listener", s.ListenerPath)
	}
	calls := notified
	if accept {
		calls = notifiedAccept
	}
	allowed := map[string]bool{}
	if allows(s.DefaultAction) {
		for _, name := range calls {
			allowed[name] = true
		}
	}
	rules := make([]specs.LinuxSyscall, 0, len(s.Syscalls)+1)
	for i, r := range s.Syscalls {
		named := intersect(r.Names, calls)
		if len(named) == 0 {
			rules = append(rules, r)
			continue
		}
		if r.Action != specs.ActAllow || len(r.Args) != 0 {
			cond := ""
			if len(r.Args) != 0 {
				cond = fmt.Sprintf(" with %d argument conditions", len(r.Args))
			}
			return fmt.Errorf("seccomp filter: rule %d (%s%s) names %v: only an unconditional %s rule can become a notification",
				i, r.Action, cond, named, specs.ActAllow)
		}
		for _, n := range named {
			allowed[n] = true
		}
		keep := slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(calls, n) })
		if len(keep) == 0 {
			continue
		}
		r.Names = keep
		rules = append(rules, r)
	}
	for _, n := range calls {
		if !allowed[n] {
			return fmt.Errorf("seccomp filter: %s is not allowed (default action %s); notifying it would let the agent allow it", n, s.DefaultAction)
		}
	}
	s.Syscalls = append(rules, specs.LinuxSyscall{
		Names:  slices.Clone(calls),
		Action: specs.ActNotify,
	})
	s.ListenerPath = listenerPath
	s.ListenerMetadata = metadata
	return nil
}

// allows reports whether a default action lets a call run.
func allows(a specs.LinuxSeccompAction) bool {
	return a == specs.ActAllow || a == specs.ActLog
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
