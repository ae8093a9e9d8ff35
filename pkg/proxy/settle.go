package proxy

import (
	"runtime/debug"
	"time"
)

// settler returns memory and descriptors after a burst of connections.
//
// Go's splice keeps one pipe (two descriptors, a kernel buffer) per copy
// direction in a sync.Pool, and a pooled object is only freed by the second
// garbage collection after it was put back. Goroutine stacks that grew while
// dialling shrink only during a collection too. A proxy that holds idle
// connections allocates nothing, so no collection comes (until the runtime's
// forced one, every two minutes): after a burst it would keep thousands of
// descriptors and megabytes it no longer needs. So once the connection count
// has not changed for settleAfter, the settler runs two collections (the
// second empties the pools' victim caches) and returns freed memory to the
// kernel. Under steady churn it never fires; the collector runs anyway then.
//
// churn and stop are called with the proxy's mutex held (connStart,
// connEnd, Serve), which serialises them.
type settler struct {
	timer *time.Timer
	after time.Duration
}

const settleAfter = time.Second

func newSettler(after time.Duration) *settler {
	s := &settler{after: after}
	s.timer = time.AfterFunc(time.Hour, s.settle)
	s.timer.Stop()
	return s
}

// churn notes a connection opened or closed: settle once things are quiet.
func (s *settler) churn() { s.timer.Reset(s.after) }

func (s *settler) stop() { s.timer.Stop() }

func (s *settler) settle() {
	debug.FreeOSMemory() // collects, and returns freed memory
	debug.FreeOSMemory() // the pools' victim caches, now unreferenced
}
