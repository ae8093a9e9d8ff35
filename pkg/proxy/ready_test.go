package proxy

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyGate(t *testing.T) {
	release := make(chan error)
	var starts atomic.Int32
	r := &readyGate{log: testLog(t), timeout: 5 * time.Second, done: make(chan struct{}),
		start: func(ctx context.Context) error { starts.Add(1); return <-release }}
	g1, g2 := &Generation{desc: "one"}, &Generation{desc: "two"}
	cur := g1
	current := func() *Generation { return cur }

	ok, done := r.check(g1, current)
	if ok {
		t.Fatal("check before any start = ready; want not ready")
	}
	ok2, _ := r.check(g1, current)
	release <- nil
	<-done
	if ok2 || starts.Load() != 1 {
		t.Errorf("second check: ready %v, %d starts; want not ready, 1 start (one at a time)", ok2, starts.Load())
	}
	if ok, _ := r.check(g1, current); !ok {
		t.Errorf("check after the start returned = not ready; want ready")
	}
	// a restarted container is confirmed again
	cur = g2
	ok, done = r.check(g2, current)
	if ok {
		t.Fatal("check of a new generation = ready; want not ready")
	}
	start := time.Now()
	release <- errors.New("failed")
	<-done
	if time.Since(start) < minKickInterval/2 {
		t.Errorf("a failed start was followed at once; want a pause of %s", minKickInterval)
	}
	if ok, done = r.check(g2, current); ok {
		t.Fatal("check after a failed start = ready; want not ready")
	}
	release <- nil
	<-done
	if ok, _ := r.check(g2, current); !ok || starts.Load() != 3 {
		t.Errorf("after a second start: ready %v, %d starts; want ready, 3", ok, starts.Load())
	}
}
