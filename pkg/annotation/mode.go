package annotation

import "fmt"

// ModeKey is the annotation that picks how connections reach the server:
// Annotation=bro.mode=proxy|direct|handoff. Without it, proxy.
const ModeKey = "bro.mode"

// The modes of ModeKey.
const (
	// ModeProxy: bro-proxy accepts and relays every connection into the
	// container's network namespace. Any image.
	ModeProxy = "proxy"
	// ModeDirect: systemd's socket is passed into the container
	// (LISTEN_FDS); the server must read it.
	ModeDirect = "direct"
	// ModeHandoff: the container's own bind() receives systemd's socket
	// through seccomp user notification. Any image, no relay.
	ModeHandoff = "handoff"
)

// ModeRule is the rule for ModeKey, quoted in its error.
const ModeRule = "proxy, direct or handoff"

// ParseMode checks a bro.mode value; "" is ModeProxy.
func ParseMode(v string) (string, error) {
	switch v {
	case "":
		return ModeProxy, nil
	case ModeProxy, ModeDirect, ModeHandoff:
		return v, nil
	}
	return "", fmt.Errorf("invalid %s=%q: want %s", ModeKey, v, ModeRule)
}
