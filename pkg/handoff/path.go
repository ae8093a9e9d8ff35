package handoff

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ListenerDir is the directory, below a user's state directory (record's
// DefaultStateDir: /run/user/UID/bro, /run/bro for root; 0700), of the
// agents' seccomp listener sockets, one per activator.
const ListenerDir = "handoff"

// MetadataPrefix starts the listenerMetadata that the hook writes into the
// container's seccomp profile; the unit's name follows. runc passes it back
// to the agent with the container's notify fd, and the agent takes fds only
// for its own unit.
const MetadataPrefix = "bro-handoff unit="

// ListenerPath is where the agent for the container of systemd unit
// NAME.service listens for runc: STATEDIR/handoff/NAME.sock. The activator's
// socket unit names the same path as %t/bro/handoff/NAME.sock.
func ListenerPath(stateDir, unit string) (string, error) {
	name, ok := strings.CutSuffix(unit, ".service")
	if !ok || name == "" || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("unit %q: want NAME.service", unit)
	}
	p := filepath.Join(stateDir, ListenerDir, name+".sock")
	if len(p) > 107 {
		return "", fmt.Errorf("seccomp listener path %q: longer than a unix socket address (107 bytes)", p)
	}
	return p, nil
}

// Metadata is the listenerMetadata for the container of unit.
func Metadata(unit string) string { return MetadataPrefix + unit }
