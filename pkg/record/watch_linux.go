package record

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Watcher signals changes in a state directory: a record written, renamed
// into place or removed. Signals are coalesced; after one arrives on C, read
// the directory again. C is closed when the watcher is, so a loop ranging
// over it ends with it.
type Watcher struct {
	C    <-chan struct{}
	f    *os.File
	done chan struct{}
}

// Watch starts an inotify watch on the open directory (through its
// descriptor, so the watch is on the directory that was checked, not on
// whatever the path names later). Stop it with Close.
func (d *StateDir) Watch() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", d.Path, err)
	}
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE |
		unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, fmt.Sprintf("/proc/self/fd/%d", d.fd), mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", d.Path, err)
	}
	c := make(chan struct{}, 1)
	w := &Watcher{C: c, f: os.NewFile(uintptr(fd), "inotify"), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(c) // before done: C is closed once Close returns
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return // closed
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

// Close stops the watch, waits for its reader to end and closes C.
func (w *Watcher) Close() error {
	err := w.f.Close()
	<-w.done
	return err
}
