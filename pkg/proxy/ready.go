package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// readyGate holds the clients of a Container until its unit is active:
// `systemctl start UNIT` returns once a Type=notify unit (quadlet
// Notify=true) has said READY=1, having started it first if it was not
// running. For an activator that is not ordered after the unit (--allow:
// that order would start the container for clients then refused), it is
// what keeps a server that accepts before it is ready (PostgreSQL: "the
// database system is starting up") from being reached too soon. Each new
// generation (a restarted container) is confirmed again.
type readyGate struct {
	log   *logrus.Entry
	start func(ctx context.Context) error // systemctl start, blocking
	// timeout bounds one start (--container-timeout).
	timeout time.Duration

	mu       sync.Mutex
	readyFor *Generation   // the generation the last successful start confirmed
	inflight bool          // a start runs
	done     chan struct{} // closed and replaced when a start ends
}

func newReadyGate(unit string, timeout time.Duration, log *logrus.Entry) *readyGate {
	return &readyGate{log: log, timeout: timeout, done: make(chan struct{}),
		start: func(ctx context.Context) error {
			err := StartUnit(ctx, unit, true)
			if err != nil {
				repeatLog.log("ready-failed", log.WithError(err), logrus.WarnLevel, "cannot start "+unit+"; clients wait")
			}
			return err
		}}
}

// check reports whether g is confirmed ready; if not, it makes sure a start
// runs, and returns a channel closed when it ends. cur gives the generation
// current when the start returns (the one it confirmed).
func (r *readyGate) check(g *Generation, cur func() *Generation) (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readyFor == g {
		return true, nil
	}
	if !r.inflight {
		r.inflight = true
		go r.confirm(cur)
	}
	return false, r.done
}

func (r *readyGate) confirm(cur func() *Generation) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	err := r.start(ctx)
	cancel()
	if err != nil {
		// not at once again: a start that fails fast would spin
		time.Sleep(minKickInterval)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if g := cur(); g != nil && r.readyFor != g {
			r.readyFor = g
			r.log.WithField("backend", g.desc).Info("unit is active: clients may reach the server")
		}
	}
	r.inflight = false
	close(r.done)
	r.done = make(chan struct{})
}
