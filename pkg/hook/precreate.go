package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/handoff"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxConfigSize bounds the config.json a precreate hook reads from stdin.
// Podman's are a few KiB; a large environment or many mounts stay far below.
const MaxConfigSize = 16 << 20

// ReadConfig reads a container's config.json, as Podman writes it to a
// precreate hook's stdin, from r, up to MaxConfigSize.
func ReadConfig(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read container config: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("container config on stdin is larger than %d bytes", MaxConfigSize)
	}
	return data, nil
}

// Precreate returns the config.json the container must be created with,
// given config, the one Podman passes to a precreate hook. Podman replaces
// the container's config with what the hook writes to stdout.
//
// For any bro.mode but handoff it returns config itself, byte for byte. For
// bro.mode=handoff it applies handoff.FilterSpec to linux.seccomp (accept and
// accept4 notified too when process.env has NOTIFY_SOCKET, as quadlet's
// Notify=true gives it, so that the agent can hold accept() until the unit is
// ready), with the listener of unit's agent below stateDir, and keeps every
// other field as it was. unit is the systemd unit the hook runs in (see
// SystemdUnit); stateDir is called only for a handoff container.
//
// Errors, in this order: config is not a JSON object, or a field Precreate
// reads has the wrong type; bro.mode is invalid; for handoff, the container
// has no seccomp filter (handoff.ErrNoFilter's text), unit is not
// NAME.service (the container was started from a shell, not by its unit),
// stateDir fails, no socket is at the agent's listener path, or FilterSpec
// refuses the filter.
func Precreate(config []byte, unit string, stateDir func() (string, error)) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(config, &top); err != nil {
		return nil, fmt.Errorf("decode container config: %w", err)
	}
	var annotations map[string]string
	if err := unmarshalField(top, "annotations", &annotations); err != nil {
		return nil, err
	}
	mode, err := annotation.ParseMode(annotations[annotation.ModeKey])
	if err != nil {
		return nil, err
	}
	if mode != annotation.ModeHandoff {
		return config, nil
	}
	prefix := annotation.ModeKey + "=" + annotation.ModeHandoff + ": "
	var linux map[string]json.RawMessage
	if err := unmarshalField(top, "linux", &linux); err != nil {
		return nil, err
	}
	var filter *specs.LinuxSeccomp
	if raw, ok := linux["seccomp"]; ok && !isNull(raw) {
		// Refuse what this runtime-spec does not know rather than drop it
		// from a security filter.
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&filter); err != nil {
			return nil, fmt.Errorf("%sdecode linux.seccomp: %w", prefix, err)
		}
	}
	if filter == nil {
		return nil, errors.New(prefix + handoff.ErrNoFilter.Error())
	}
	var process struct {
		Env []string `json:"env"`
	}
	if err := unmarshalField(top, "process", &process); err != nil {
		return nil, err
	}
	accept := slices.ContainsFunc(process.Env, func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") })

	if !strings.HasSuffix(unit, ".service") {
		return nil, errors.New(prefix + "the container must be started by its systemd unit (a quadlet with " +
			annotation.Key + "), not from a shell: no agent would receive its seccomp listener")
	}
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	path, err := handoff.ListenerPath(dir, unit)
	if err != nil {
		return nil, errors.New(prefix + err.Error())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%sno agent socket at %s for %s (run bro-activate --mode handoff for it, or daemon-reload after adding %s=%s to its quadlet)",
			prefix, path, unit, annotation.ModeKey, annotation.ModeHandoff)
	}
	if err := handoff.FilterSpec(filter, path, handoff.Metadata(unit), accept); err != nil {
		return nil, errors.New(prefix + err.Error())
	}
	if linux["seccomp"], err = marshal(filter); err != nil {
		return nil, err
	}
	if top["linux"], err = marshal(linux); err != nil {
		return nil, err
	}
	return marshal(top)
}

// unmarshalField decodes top[key] into v; a missing or null field leaves v
// as it was.
func unmarshalField(top map[string]json.RawMessage, key string, v any) error {
	raw, ok := top[key]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode container config: %s: %w", key, err)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// marshal encodes v without HTML escaping, so that untouched strings keep
// their bytes, and without the encoder's trailing newline.
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode container config: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
