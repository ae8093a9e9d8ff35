package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/brothaman/brothaman-go/pkg/record"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MaxStateSize bounds what the hook reads from stdin. A runtime's state is a
// few KiB; anything near this size is not a state.
const MaxStateSize = 1 << 20

// State is the container state a runtime writes to a hook's stdin.
type State struct {
	specs.State
}

// ErrStateTooLarge is returned for input over MaxStateSize.
var ErrStateTooLarge = fmt.Errorf("container state on stdin is larger than %d bytes", MaxStateSize)

// ReadState decodes the OCI state from r. It returns ErrStateTooLarge for
// oversized input and an error naming the missing property for a state
// without an id. A pid of 0 is accepted: Podman runs poststop hooks after the
// container's process is gone.
func ReadState(r io.Reader) (*State, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read container state: %w", err)
	}
	if len(data) > MaxStateSize {
		return nil, ErrStateTooLarge
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("read container state: stdin is empty")
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode container state: %w", err)
	}
	if s.ID == "" {
		return nil, errors.New("invalid container state: missing required property: id")
	}
	if !record.ValidID(s.ID) {
		return nil, fmt.Errorf("invalid container state: id %q: want 1-128 characters of [A-Za-z0-9_.-], not starting with '.'", s.ID)
	}
	if s.Pid < 0 {
		return nil, fmt.Errorf("invalid container state: pid %d is negative", s.Pid)
	}
	return &s, nil
}
