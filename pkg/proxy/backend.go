package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/brothaman/brothaman-go/pkg/record"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Generation is one incarnation of the backend namespace: a container's
// process (pid + start time) or a namespace given on the command line.
type Generation struct {
	sockets ns.Sockets
	rec     *record.Record // nil unless following a container
	desc    string
	since   time.Time // when it was found

	readyOnce sync.Once
	ready     chan struct{} // closed at the first successful dial
}

func NewGeneration(s ns.Sockets, rec *record.Record, desc string) *Generation {
	return &Generation{sockets: s, rec: rec, desc: desc, since: time.Now(), ready: make(chan struct{})}
}

// markReady wakes clients that wait to retry: the backend now listens.
func (g *Generation) markReady() bool {
	first := false
	g.readyOnce.Do(func() { close(g.ready); first = true })
	return first
}

// Backend says where backend sockets are made.
type Backend interface {
	// Get returns the current generation, waiting until ctx ends for one.
	Get(ctx context.Context) (*Generation, error)
	// Failed reports that a dial through g was refused; a source that
	// follows a container checks whether the container is still there.
	Failed(g *Generation)
	Close()
}

// Static is one namespace for the proxy's life: the current one, or
// one given with --netns or --pid.
type Static struct{ g *Generation }

func (s Static) Get(context.Context) (*Generation, error) { return s.g, nil }
func (s Static) Failed(*Generation)                       {}
func (s Static) Close()                                   { s.g.sockets.Close() }

// Container follows the hook's records of one container: it enters
// the namespace of the newest live record whose name matches, and switches
// when the container is replaced (restart: new id, pid and netns).
type Container struct {
	name    string
	uid     int
	dir     *record.StateDir
	watch   *record.Watcher
	timeout time.Duration // --container-timeout
	log     *logrus.Entry
	starter *unitStarter // --start-unit, or nil
	atOnce  bool         // ContainerConfig.StartAtOnce
	ready   *readyGate   // ContainerConfig.WaitReady, or nil
	// mount: some target is a unix socket path, resolved in the
	// container's mount namespace (ns.EnterMount).
	mount bool
	// wrap, if set, wraps every namespace entered (socket prefetching).
	wrap func(ns.Sockets) ns.Sockets
	// enterNS is enterProcess, unless a test fails it on purpose.
	enterNS func(pid int, start uint64, netns *[2]uint64, mount bool) (ns.Sockets, error)

	scanMu sync.Mutex // serialises rescan; guards warned and closed
	closed bool       // Close ran: the directory is closed, rescan does nothing

	followed chan struct{} // closed when follow ends

	mu      sync.Mutex
	cur     *Generation
	changed chan struct{} // closed and replaced whenever cur changes
	warned  map[string]bool
	seen    bool // a generation was ever found
	start   time.Time
	// retryAt: a live record's namespace could not be entered (EMFILE, a
	// helper that did not start); waiting clients try again then. Zero when
	// there is nothing to retry. retryDelay doubles at each failure.
	retryAt    time.Time
	retryDelay time.Duration
	enterErr   error // why, for the clients that give up
}

// How soon a failed entry into a live record's namespace is tried again
// while clients wait: the first retry after enterRetryMin, each next one
// twice as late, at most enterRetryMax apart.
const (
	enterRetryMin = 50 * time.Millisecond
	enterRetryMax = 2 * time.Second
)

// ContainerConfig says which container a Container backend follows.
type ContainerConfig struct {
	Name    string           // the container's name, id, or quadlet unit
	UID     int              // records of other users are refused
	Dir     *record.StateDir // bro-hook's records; the backend closes it
	Timeout time.Duration    // how long a client waits for the container
	// Mount: some target is a unix socket path, resolved in the
	// container's mount namespace.
	Mount bool
	// StartUnit, if set, is started (systemctl start --no-block) when a
	// client waits for a container that is not running.
	StartUnit string
	// StartAtOnce: the first client that waits starts StartUnit at once.
	// Set when the activator does not pull the unit in itself (--allow:
	// its Wants= would start the container for a client then refused).
	StartAtOnce bool
	// WaitReady: with StartUnit, a client reaches a container only once
	// `systemctl start StartUnit` has returned for it (ready.go). Set with
	// StartAtOnce when the quadlet has Notify=.
	WaitReady bool
	// Wrap, if set, wraps every namespace entered (socket prefetching).
	Wrap func(ns.Sockets) ns.Sockets
	Log  *logrus.Entry

	// enter replaces enterProcess in tests.
	enter func(pid int, start uint64, netns *[2]uint64, mount bool) (ns.Sockets, error)
}

// NewContainer follows the records of cfg.Name in cfg.Dir.
func NewContainer(cfg ContainerConfig) (*Container, error) {
	w, err := cfg.Dir.Watch()
	if err != nil {
		return nil, err
	}
	log := cfg.Log.WithField("follow", cfg.Name)
	s := &Container{name: cfg.Name, uid: cfg.UID, dir: cfg.Dir, watch: w, timeout: cfg.Timeout, log: log, mount: cfg.Mount,
		wrap: cfg.Wrap, enterNS: cfg.enter, changed: make(chan struct{}), warned: make(map[string]bool), start: time.Now()}
	if s.enterNS == nil {
		s.enterNS = enterProcess
	}
	if cfg.StartUnit != "" {
		s.starter = &unitStarter{unit: cfg.StartUnit, log: log}
		s.atOnce = cfg.StartAtOnce
		if cfg.WaitReady {
			s.ready = newReadyGate(cfg.StartUnit, cfg.Timeout, log)
		}
	}
	s.rescan()
	s.followed = make(chan struct{})
	go s.follow()
	return s, nil
}

// follow rescans at every change in the state directory until Close closes
// the watcher, and with it w.C.
func (s *Container) follow() {
	defer close(s.followed)
	for range s.watch.C {
		s.rescan()
	}
}

// Close stops following the records, closes the state directory and the
// current namespace. Sockets made already keep working.
func (s *Container) Close() {
	s.watch.Close()
	<-s.followed
	s.scanMu.Lock()
	s.closed = true // a late Failed must not read the closed directory
	s.dir.Close()
	s.scanMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.sockets.Close()
		s.cur = nil
	}
}

// rescan reads the records and switches to the newest live one of our
// container. Records of other uids, and records that fail verification, are
// logged once and never entered.
func (s *Container) rescan() {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	if s.closed {
		return
	}
	s.rescanLocked()
}

// retry rescans if a failed entry is due for another try: at most once per
// retryDelay, however many clients wait.
func (s *Container) retry() {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	s.mu.Lock()
	due := !s.retryAt.IsZero() && !time.Now().Before(s.retryAt)
	s.mu.Unlock()
	if due && !s.closed {
		s.rescanLocked()
	}
}

// rescanLocked is rescan with scanMu held.
func (s *Container) rescanLocked() {
	recs, errs := s.dir.List()
	// warned keys of records that are gone are forgotten, so that a
	// container crash-looping for days (a new id each time) does not grow
	// the map
	seen := make(map[string]bool)
	defer func() {
		for k := range s.warned {
			if !seen[k] {
				delete(s.warned, k)
			}
		}
	}()
	warn := func(key, msg string) {
		seen[key] = true
		s.warnOnce(key, msg)
	}
	for _, err := range errs {
		warn(err.Error(), "ignoring unreadable record: "+err.Error())
	}
	var pick *record.Record
	for _, r := range recs {
		if !r.Matches(s.name) {
			continue
		}
		if r.UID != s.uid {
			warn("uid:"+r.ID, fmt.Sprintf("ignoring record %s: it belongs to uid %d, not %d", r.ID, r.UID, s.uid))
			continue
		}
		if !r.Alive() {
			// The process is gone or its pid names another process now:
			// poststop has not run (yet), or never will (conmon killed).
			warn("stale:"+r.ID, fmt.Sprintf("ignoring stale record %s of container %s: pid %d is gone or was reused (start time differs)", record.ShortID(r.ID), r.Name, r.PID))
			continue
		}
		pick = r
		break // List is newest first
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pick != nil {
		seen["enter:"+pick.ID] = true // a retry's failure is not logged again
	} else {
		s.retryAt, s.retryDelay, s.enterErr = time.Time{}, 0, nil
	}
	if pick != nil && s.cur != nil && s.cur.rec.ID == pick.ID && s.cur.rec.PID == pick.PID {
		return
	}
	if pick == nil && s.cur == nil {
		return
	}
	old := s.cur
	s.cur = nil
	if pick != nil {
		g, err := s.enter(pick)
		if err != nil {
			s.warnOnce("enter:"+pick.ID, err.Error())
			s.retryDelay = min(max(2*s.retryDelay, enterRetryMin), enterRetryMax)
			s.retryAt, s.enterErr = time.Now().Add(s.retryDelay), err
		} else {
			s.cur = g
			s.seen = true
			s.retryAt, s.retryDelay, s.enterErr = time.Time{}, 0, nil
		}
	}
	if old != nil {
		// Sockets already made keep their namespace; only new ones stop.
		old.sockets.Close()
		if s.cur == nil {
			repeatLog.log("gone", s.log.WithFields(logrus.Fields{"container": record.ShortID(old.rec.ID), "pid": old.rec.PID}),
				logrus.InfoLevel, "container gone; waiting for it to start again")
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// enter verifies rec against the live process before entering anything:
// the pid must still have the recorded start time (not a recycled pid) and
// its network namespace the recorded device and inode.
func (s *Container) enter(rec *record.Record) (*Generation, error) {
	sockets, err := s.enterNS(rec.PID, rec.PIDStart, &[2]uint64{rec.NetNSDev, rec.NetNSIno}, s.mount)
	if err != nil {
		return nil, fmt.Errorf("refusing container %s: %w", rec.Name, err)
	}
	if s.wrap != nil {
		sockets = s.wrap(sockets)
	}
	repeatLog.log("found", s.log.WithFields(logrus.Fields{"container": record.ShortID(rec.ID), "name": rec.Name, "pid": rec.PID}),
		logrus.InfoLevel, "container found; entered its network namespace")
	return NewGeneration(sockets, rec, fmt.Sprintf("%s (pid %d)", rec.Name, rec.PID)), nil
}

// current is the generation followed now, or nil.
func (s *Container) current() *Generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// warnOnce logs msg the first time key is seen (called with scanMu held).
// The keys name records, whose ids are new at every start of a container:
// across ids the lines are rate-limited by kind (ratelog.go).
func (s *Container) warnOnce(key, msg string) {
	if s.warned[key] {
		return
	}
	s.warned[key] = true
	kind, _, _ := strings.Cut(key, ":")
	repeatLog.log("record-"+kind, s.log, logrus.WarnLevel, msg)
}

var errNoContainer = errors.New("container did not appear")

// NeverStartedError is returned (wrapped) by a backend that never appeared
// within its timeout: waiting longer would not help, and the proxy exits
// with it rather than hold every client to its timeout again.
type NeverStartedError struct {
	Name    string
	Timeout time.Duration
}

func (e *NeverStartedError) Error() string {
	return fmt.Sprintf("container %q did not start within %s", e.Name, e.Timeout)
}

func (s *Container) Get(ctx context.Context) (*Generation, error) {
	for {
		s.mu.Lock()
		g, ch, seen, retryAt := s.cur, s.changed, s.seen, s.retryAt
		s.mu.Unlock()
		if g != nil && s.ready != nil {
			ok, done := s.ready.check(g, s.current)
			if ok {
				return g, nil
			}
			select {
			case <-done:
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %s did not turn active within the wait", errNoContainer, s.starter.unit)
			}
			continue
		}
		if g != nil {
			return g, nil
		}
		// At the first activation the activator's Wants= is starting the
		// unit already (unless atOnce); afterwards nobody would.
		if seen || s.atOnce || time.Since(s.start) > minKickInterval {
			s.starter.kick()
		}
		// While clients wait, ask again every minKickInterval: a start
		// queued while the crashed unit was still stopping can be lost.
		var again <-chan time.Time
		if s.starter != nil {
			again = time.After(minKickInterval)
		}
		// A live record whose namespace could not be entered is tried
		// again while clients wait: no record change may ever come.
		var retry <-chan time.Time
		if !retryAt.IsZero() {
			retry = time.After(time.Until(retryAt))
		}
		select {
		case <-ch:
		case <-again:
		case <-retry:
			s.retry()
		case <-ctx.Done():
			why := fmt.Sprintf("no live record of container %q in %s", s.name, s.dir.Path)
			if err := s.lastEnterErr(); err != nil {
				why = fmt.Sprintf("live record of container %q in %s not entered: %v", s.name, s.dir.Path, err)
			}
			if s.neverSeen() {
				return nil, fmt.Errorf("%w: %s: %w", errNoContainer, why, &NeverStartedError{Name: s.name, Timeout: s.timeout})
			}
			return nil, fmt.Errorf("%w: %s", errNoContainer, why)
		}
	}
}

func (s *Container) Failed(g *Generation) {
	if g.rec != nil && !g.rec.Alive() {
		s.rescan()
	}
}

// lastEnterErr is why the live record of the container, if there is one,
// could not be entered.
func (s *Container) lastEnterErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enterErr
}

// neverSeen reports whether no container was found within the timeout.
func (s *Container) neverSeen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.seen && time.Since(s.start) > s.timeout
}

// PID is the network namespace of process pid for the proxy's life. If
// bro-hook recorded a container with this pid, the namespace and start time
// must match the record; the namespace must in any case belong to this user
// (ns.Enter). mount: enter its mount namespace too (unix socket targets).
func PID(pid int, dir *record.StateDir, mount bool, wrap func(ns.Sockets) ns.Sockets) (Static, error) {
	start, err := proc.StartTime(pid)
	if err != nil {
		return Static{}, fmt.Errorf("--pid %d: %w", pid, err)
	}
	var netns *[2]uint64
	if dir != nil {
		recs, _ := dir.List()
		for _, r := range recs {
			if r.PID != pid {
				continue
			}
			if r.PIDStart != start {
				return Static{}, fmt.Errorf("--pid %d: start time %d does not match the record of container %s (%d): pid reused", pid, start, r.Name, r.PIDStart)
			}
			netns = &[2]uint64{r.NetNSDev, r.NetNSIno}
		}
	}
	s, err := enterProcess(pid, start, netns, mount)
	if err != nil {
		return Static{}, fmt.Errorf("--pid %d: %w", pid, err)
	}
	return Static{NewGeneration(wrapped(wrap, s), nil, "pid "+strconv.Itoa(pid))}, nil
}

// NetNS is the network namespace file path (/run/netns/NAME) for the
// proxy's life.
func NetNS(path string, wrap func(ns.Sockets) ns.Sockets) (Static, error) {
	h, err := ns.Open(path)
	if err != nil {
		return Static{}, err
	}
	defer h.Close()
	s, err := ns.Enter(h)
	if err != nil {
		return Static{}, fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	return Static{NewGeneration(wrapped(wrap, s), nil, "netns "+path)}, nil
}

// Own is the proxy's own network namespace, as systemd-socket-proxyd.
func Own() Static { return Static{NewGeneration(ns.Current(), nil, "own network namespace")} }

func wrapped(wrap func(ns.Sockets) ns.Sockets, s ns.Sockets) ns.Sockets {
	if wrap == nil {
		return s
	}
	return wrap(s)
}

// Prefetch keeps a few stream sockets ready in an entered namespace for the
// first TCP target's family: making a socket there is a round trip to
// another thread or process, and a connection should not wait for it.
func Prefetch(listeners []Listener) func(ns.Sockets) ns.Sockets {
	for _, l := range listeners {
		if l.target.Network == "tcp" {
			domain := l.target.Domain()
			return func(s ns.Sockets) ns.Sockets { return ns.Prefetch(s, domain, unix.SOCK_STREAM, prefetchDepth) }
		}
	}
	return nil
}

// prefetchDepth is how many sockets wait ready: enough for a burst of
// clients to find one each while the pool refills.
const prefetchDepth = 16

// enterProcess enters the network namespace of pid (with mount, its mount
// namespace too, for unix socket targets inside its filesystem) after
// checking that pid is the process that started at start and, if netns is
// given, that its network namespace has that device and inode. The start
// time is checked again once entered: if it still matches, the namespaces
// entered were that process's, not a recycled pid's.
func enterProcess(pid int, start uint64, netns *[2]uint64, mount bool) (ns.Sockets, error) {
	h, err := ns.OpenNetNSOfPID(pid)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if netns != nil && !h.Is(netns[0], netns[1]) {
		return nil, fmt.Errorf("pid %d is in network namespace %d:%d, the record says %d:%d", pid, h.Dev, h.Ino, netns[0], netns[1])
	}
	if st, err := proc.StartTime(pid); err != nil || st != start {
		return nil, fmt.Errorf("pid %d was reused or exited (start time %d, expected %d)", pid, st, start)
	}
	var s ns.Sockets
	if mount {
		m, merr := ns.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if merr != nil {
			return nil, merr
		}
		defer m.Close()
		s, err = ns.EnterMount(h, m)
	} else {
		s, err = ns.Enter(h)
	}
	if err != nil {
		return nil, fmt.Errorf("enter the namespaces of pid %d: %w", pid, err)
	}
	if st, err := proc.StartTime(pid); err != nil || st != start {
		s.Close()
		return nil, fmt.Errorf("pid %d exited while its namespaces were entered", pid)
	}
	return s, nil
}
