package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/brothaman/brothaman-go/pkg/record"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxConfigSize bounds the bundle's config.json.
const maxConfigSize = 4 << 20

// ErrNoAnnotation is returned by NewRecord for a container without bro.activate.
var ErrNoAnnotation = errors.New("container has no " + annotation.Key + " annotation")

// NewRecord builds the record of a container at prestart (or createRuntime):
// it parses the annotation, identifies the process by pid and start time and
// its network namespace by device and inode, and names the container. It
// refuses a malformed annotation (an *annotation.Error), a state without a pid,
// a pid that is gone, and a container that shares the hook's own (the host's)
// network namespace.
func NewRecord(s *State, hostUID int) (*record.Record, error) {
	value, ok := s.Annotations[annotation.Key]
	if !ok {
		return nil, ErrNoAnnotation
	}
	ports, err := annotation.ParsePorts(value)
	if err != nil {
		return nil, err
	}
	if s.Pid <= 0 {
		return nil, fmt.Errorf("container %s: state has no pid (stage must be prestart or createRuntime)", record.ShortID(s.ID))
	}
	start, err := proc.StartTime(s.Pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: process %d is gone: %w", record.ShortID(s.ID), s.Pid, err)
	}
	h, err := ns.OpenNetNSOfPID(s.Pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", record.ShortID(s.ID), err)
	}
	defer h.Close()
	// thread-self: another thread of this process may sit in another
	// namespace (a locked thread), and /proc/self names the main thread.
	self, err := ns.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", record.ShortID(s.ID), err)
	}
	same := self.Equal(h)
	self.Close()
	if same {
		return nil, fmt.Errorf("container %s shares the host's network namespace (Network=host?): %s needs a container with its own", record.ShortID(s.ID), annotation.Key)
	}
	// The start time is read again after the namespace is open: if it still
	// matches, the namespace belongs to the process we identified.
	if again, err := proc.StartTime(s.Pid); err != nil || again != start {
		return nil, fmt.Errorf("container %s: process %d exited while being recorded", record.ShortID(s.ID), s.Pid)
	}
	netnsPath := networkNamespacePath(s.Bundle)
	if netnsPath == "" {
		netnsPath = fmt.Sprintf("/proc/%d/ns/net", s.Pid)
	}
	return &record.Record{
		Version:    record.Version,
		ID:         s.ID,
		Name:       ContainerName(s.Bundle, s.ID, s.Annotations),
		Unit:       SystemdUnit(s.Pid),
		PID:        s.Pid,
		PIDStart:   start,
		NetNS:      netnsPath,
		NetNSDev:   h.Dev,
		NetNSIno:   h.Ino,
		UID:        hostUID,
		Annotation: value,
		Ports:      ports,
		Created:    time.Now().UTC(),
	}, nil
}

// networkNamespacePath is the path of a network namespace the runtime was
// told to join (Podman's netns for slirp4netns and bridge networks), or "".
func networkNamespacePath(bundle string) string {
	if bundle == "" {
		return ""
	}
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var spec specs.Spec
	if err := json.NewDecoder(io.LimitReader(f, maxConfigSize)).Decode(&spec); err != nil || spec.Linux == nil {
		return ""
	}
	for _, n := range spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			return n.Path
		}
	}
	return ""
}
