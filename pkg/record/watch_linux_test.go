package record

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/internal/proctest"
)

// watchWait bounds how long a change may take to be signalled.
const watchWait = 5 * time.Second

func TestWatcher(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T, d *StateDir) // runs before the watch starts
		change func(t *testing.T, d *StateDir)
	}{
		{
			name:   "write",
			change: func(t *testing.T, d *StateDir) { mustDo(t, d.Write(testRecord(testID))) },
		},
		{
			name:   "overwrite",
			before: func(t *testing.T, d *StateDir) { mustDo(t, d.Write(testRecord(testID))) },
			change: func(t *testing.T, d *StateDir) { mustDo(t, d.Write(testRecord(testID))) },
		},
		{
			name:   "remove",
			before: func(t *testing.T, d *StateDir) { mustDo(t, d.Write(testRecord(testID))) },
			change: func(t *testing.T, d *StateDir) { mustDo(t, d.Remove(testID)) },
		},
		{
			name: "remove stale",
			before: func(t *testing.T, d *StateDir) {
				r := testRecord(testID)
				r.PID = proctest.Dead(t)
				mustDo(t, d.Write(r))
			},
			change: func(t *testing.T, d *StateDir) {
				if got := d.RemoveStale(); len(got) != 1 {
					t.Fatalf("RemoveStale() = %q; want one id", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newStateDir(t)
			if tt.before != nil {
				tt.before(t, d)
			}
			w, err := d.Watch()
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			defer closeWatcher(t, w)
			// Nothing changes yet, so nothing is signalled.
			select {
			case <-w.C:
				t.Fatal("signal before any change")
			case <-time.After(50 * time.Millisecond):
			}
			tt.change(t, d)
			select {
			case <-w.C:
			case <-time.After(watchWait):
				t.Fatalf("no signal within %v of the change", watchWait)
			}
		})
	}
}

// The watch is on the directory that was opened, not on whatever its path
// names later.
func TestWatcherFollowsTheOpenDirectory(t *testing.T) {
	d := newStateDir(t)
	w, err := d.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer closeWatcher(t, w)
	moved := filepath.Join(filepath.Dir(d.Path), "moved")
	mustDo(t, os.Rename(d.Path, moved))
	select { // IN_MOVE_SELF
	case <-w.C:
	case <-time.After(watchWait):
		t.Fatalf("no signal within %v of moving the directory", watchWait)
	}
	mustDo(t, os.Mkdir(d.Path, 0o700))
	mustDo(t, os.WriteFile(filepath.Join(d.Path, "decoy.json"), nil, 0o600))
	select {
	case <-w.C:
		t.Fatal("signal for a file written in a new directory at the old path")
	case <-time.After(100 * time.Millisecond):
	}
	mustDo(t, d.Write(testRecord(testID)))
	select {
	case <-w.C:
	case <-time.After(watchWait):
		t.Fatalf("no signal within %v of a write through the open directory", watchWait)
	}
	if _, err := os.Stat(filepath.Join(moved, testID+".json")); err != nil {
		t.Errorf("record not written in the opened directory: %v", err)
	}
}

func TestWatcherCoalesces(t *testing.T) {
	d := newStateDir(t)
	w, err := d.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer closeWatcher(t, w)
	for i := 0; i < 100; i++ {
		mustDo(t, d.Write(testRecord(testID)))
	}
	select {
	case <-w.C:
	case <-time.After(watchWait):
		t.Fatalf("no signal within %v of 100 writes", watchWait)
	}
	if cap(w.C) != 1 {
		t.Errorf("cap(C) = %d; want 1 (signals coalesce)", cap(w.C))
	}
}

func TestWatcherCloseIdle(t *testing.T) {
	d := newStateDir(t)
	w, err := d.Watch()
	if err != nil {
		t.Fatal(err)
	}
	closeWatcher(t, w)
}

// TestWatcherCloseEndsC: a reader ranging over C, as bro-proxy's rescan loop
// does, ends when the watcher is closed, pending signal or not.
func TestWatcherCloseEndsC(t *testing.T) {
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("signal pending %v", pending), func(t *testing.T) {
			d := newStateDir(t)
			w, err := d.Watch()
			if err != nil {
				t.Fatal(err)
			}
			if pending {
				mustDo(t, d.Write(testRecord(testID)))
				deadline := time.Now().Add(watchWait)
				for len(w.C) == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			}
			ended := make(chan int)
			go func() {
				n := 0
				for range w.C {
					n++
				}
				ended <- n
			}()
			closeWatcher(t, w)
			select {
			case n := <-ended:
				if pending && n > 1 {
					t.Errorf("got %d signals for one write; want at most 1", n)
				}
			case <-time.After(watchWait):
				t.Fatalf("range over C still running %v after Close; want C closed", watchWait)
			}
			if _, ok := <-w.C; ok {
				t.Error("receive from C after Close succeeded; want a closed channel")
			}
		})
	}
}

func TestWatchClosedDir(t *testing.T) {
	d := newStateDir(t)
	d.Close()
	if w, err := d.Watch(); err == nil {
		closeWatcher(t, w)
		t.Fatal("Watch of a closed directory succeeded; want an error")
	}
}

// closeWatcher closes w and fails if Close does not return promptly.
func closeWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(watchWait):
		t.Fatalf("Close did not return within %v", watchWait)
	}
}
