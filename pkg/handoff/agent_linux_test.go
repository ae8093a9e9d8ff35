package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
)

// syncBuffer is a log output the test reads while the agent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgentTakes sends the agent what runc sends, right and wrong: only a
// message with the unit's metadata, the handoff annotation and a seccompFd
// is taken (stored and served); every other is refused with its reason and
// its descriptors closed.
func TestAgentTakes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	l := logrus.New()
	l.SetOutput(&out)
	var mu sync.Mutex
	var stored []string
	a := &Agent{Handler: &Handler{}, Unit: "db.service", Log: logrus.NewEntry(l),
		Store: func(name string, fd int) error { mu.Lock(); stored = append(stored, name); mu.Unlock(); return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	good := specs.ContainerProcessState{Version: "1.0.2", Fds: []string{specs.SeccompFdName}, Pid: 42,
		Metadata: Metadata("db.service"), State: specs.State{ID: "0123456789abcdef", Pid: 42,
			Annotations: map[string]string{"bro.mode": "handoff"}}}
	send := func(st specs.ContainerProcessState) int {
		t.Helper()
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// a pipe stands in for the seccomp listener: the agent takes it or
		// closes it, and the other end tells which
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		if err := fdpass.Send(c, b, p[0]); err != nil {
			t.Fatal(err)
		}
		unix.Close(p[0])
		return p[1]
	}
	waitLog := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if strings.Contains(out.String(), want) {
				return
			}
		}
		t.Fatalf("the agent's log has no %q:\n%s", want, out.String())
	}
	closed := func(w int) bool { // the agent closed the read end: EPIPE
		_, err := unix.Write(w, []byte{0})
		return err == unix.EPIPE
	}

	wrongUnit := good
	wrongUnit.Metadata = Metadata("other.service")
	noMode := good
	noMode.State.Annotations = map[string]string{"bro.activate": "5432"}
	noFd := good
	noFd.Fds = []string{"pidFd"}
	for _, tc := range []struct {
		st   specs.ContainerProcessState
		want string
	}{
		{wrongUnit, `not a container of db.service`},
		{noMode, `want handoff`},
		{noFd, `no seccompFd among the 1 descriptors`},
	} {
		w := send(tc.st)
		waitLog(tc.want)
		for deadline := time.Now().Add(5 * time.Second); !closed(w) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if !closed(w) {
			t.Errorf("%s: the refused descriptor is still open in the agent", tc.want)
		}
		unix.Close(w)
	}
	mu.Lock()
	if len(stored) != 0 {
		t.Errorf("stored %v after refusals; want nothing", stored)
	}
	mu.Unlock()

	w := send(good)
	defer unix.Close(w)
	waitLog("serving the container's seccomp listener")
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 1 || !strings.HasPrefix(stored[0], StoredPrefix+"0123456789ab-") {
		t.Errorf("stored %v; want one name %s0123456789ab-N", stored, StoredPrefix)
	}
}
