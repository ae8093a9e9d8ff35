package proxy

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// logLimiter keeps the lines that repeat while a backend crash-loops (a
// client closed, the container found and gone again, its unit started again)
// to a few per window, kind by kind: the first burst lines of a kind in a
// window are logged as they come, the rest only counted, and when the window
// ends one line (the last one held back) says how many were not logged. A
// single restart or a single failed client is therefore logged in full; a
// loop costs a few lines per window instead of one per client and restart.
type logLimiter struct {
	window time.Duration
	burst  int

	mu    sync.Mutex
	kinds map[string]*logWindow
}

type logWindow struct {
	start   time.Time
	n       int // lines of this kind in the window, logged or not
	dropped int
	// the last line held back, logged with the count when the window ends
	last  *logrus.Entry
	level logrus.Level
	msg   string
	timer *time.Timer
}

// The repeating lines of a crash loop: at most repeatBurst of each kind per
// repeatWindow, then one summary.
const (
	repeatWindow = 30 * time.Second
	repeatBurst  = 3
)

// repeatLog is the proxy's one limiter: its kinds are few and fixed.
var repeatLog = newLogLimiter(repeatWindow, repeatBurst)

func newLogLimiter(window time.Duration, burst int) *logLimiter {
	return &logLimiter{window: window, burst: burst, kinds: make(map[string]*logWindow)}
}

// log logs msg at level through e, unless burst lines of kind were logged in
// the current window already.
func (l *logLimiter) log(kind string, e *logrus.Entry, level logrus.Level, msg string) {
	if !e.Logger.IsLevelEnabled(level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	w := l.kinds[kind]
	if w == nil || (w.timer == nil && now.Sub(w.start) >= l.window) {
		w = &logWindow{start: now}
		l.kinds[kind] = w
	}
	w.n++
	if w.n <= l.burst {
		l.mu.Unlock()
		e.Log(level, msg)
		return
	}
	w.dropped++
	w.last, w.level, w.msg = e, level, msg
	if w.timer == nil {
		w.timer = time.AfterFunc(w.start.Add(l.window).Sub(now), func() { l.flush(kind, w) })
	}
	l.mu.Unlock()
}

// flush ends w, the window of kind, with one line for what it held back.
func (l *logLimiter) flush(kind string, w *logWindow) {
	l.mu.Lock()
	if l.kinds[kind] == w {
		delete(l.kinds, kind)
	}
	e, level, msg, dropped := w.last, w.level, w.msg, w.dropped
	l.mu.Unlock()
	e.WithFields(logrus.Fields{"suppressed": dropped, "window": l.window.String()}).Log(level, msg)
}
