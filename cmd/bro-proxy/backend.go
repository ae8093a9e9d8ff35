package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/brothaman/brothaman-go/pkg/hook"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
)

// generation is one incarnation of the backend namespace: a container's
// process (pid + start time) or a namespace given on the command line.
type generation struct {
	sockets ns.Sockets
	rec     *hook.Record // nil unless following a container
	desc    string
	since   time.Time // when it was found

	readyOnce sync.Once
	ready     chan struct{} // closed at the first successful dial
}

func newGeneration(s ns.Sockets, rec *hook.Record, desc string) *generation {
	return &generation{sockets: s, rec: rec, desc: desc, since: time.Now(), ready: make(chan struct{})}
}

// markReady wakes clients that wait to retry: the backend now listens.
func (g *generation) markReady() bool {
	first := false
	g.readyOnce.Do(func() { close(g.ready); first = true })
	return first
}

// source says where backend sockets are made.
type source interface {
	// get returns the current generation, waiting until ctx ends for one.
	get(ctx context.Context) (*generation, error)
	// failed reports that a dial through g was refused; a source that
	// follows a container checks whether the container is still there.
	failed(g *generation)
	close()
}

// staticSource is one namespace for the proxy's life: the current one, or
// one given with --netns or --pid.
type staticSource struct{ g *generation }

func (s staticSource) get(context.Context) (*generation, error) { return s.g, nil }
func (s staticSource) failed(*generation)                       {}
func (s staticSource) close()                                   { s.g.sockets.Close() }

// containerSource follows the hook's records of one container: it enters
// the namespace of the newest live record whose name matches, and switches
// when the container is replaced (restart: new id, pid and netns).
type containerSource struct {
	name    string
	uid     int
	dir     *hook.StateDir
	watch   *hook.Watcher
	timeout time.Duration // --container-timeout
	log     *logrus.Entry
	starter *unitStarter // --start-unit, or nil
	// mount: some target is a unix socket path, resolved in the
	// container's mount namespace (ns.EnterMount).
	mount bool
	// wrap, if set, wraps every namespace entered (socket prefetching).
	wrap func(ns.Sockets) ns.Sockets

	scanMu sync.Mutex // serialises rescan; guards warned

	mu      sync.Mutex
	cur     *generation
	changed chan struct{} // closed and replaced whenever cur changes
	warned  map[string]bool
	seen    bool // a generation was ever found
	start   time.Time
}

func newContainerSource(name string, uid int, dir *hook.StateDir, timeout time.Duration, mount bool, log *logrus.Entry) (*containerSource, error) {
	w, err := dir.Watch()
	if err != nil {
		return nil, err
	}
	s := &containerSource{name: name, uid: uid, dir: dir, watch: w, timeout: timeout, log: log, mount: mount,
		changed: make(chan struct{}), warned: make(map[string]bool), start: time.Now()}
	s.rescan()
	go func() {
		for range w.C {
			s.rescan()
		}
	}()
	return s, nil
}

func (s *containerSource) close() {
	s.watch.Close()
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
func (s *containerSource) rescan() {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
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
	var pick *hook.Record
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
			warn("stale:"+r.ID, fmt.Sprintf("ignoring stale record %s of container %s: pid %d is gone or was reused (start time differs)", hook.ShortID(r.ID), r.Name, r.PID))
			continue
		}
		pick = r
		break // List is newest first
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pick != nil {
		seen["enter:"+pick.ID] = true
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
		} else {
			s.cur = g
			s.seen = true
		}
	}
	if old != nil {
		// Sockets already made keep their namespace; only new ones stop.
		old.sockets.Close()
		if s.cur == nil {
			repeatLog.log("gone", s.log.WithFields(logrus.Fields{"container": hook.ShortID(old.rec.ID), "pid": old.rec.PID}),
				logrus.InfoLevel, "container gone; waiting for it to start again")
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// enter verifies rec against the live process before entering anything:
// the pid must still have the recorded start time (not a recycled pid) and
// its network namespace the recorded device and inode.
func (s *containerSource) enter(rec *hook.Record) (*generation, error) {
	sockets, err := enterProcess(rec.PID, rec.PIDStart, &[2]uint64{rec.NetNSDev, rec.NetNSIno}, s.mount)
	if err != nil {
		return nil, fmt.Errorf("refusing container %s: %w", rec.Name, err)
	}
	if s.wrap != nil {
		sockets = s.wrap(sockets)
	}
	repeatLog.log("found", s.log.WithFields(logrus.Fields{"container": hook.ShortID(rec.ID), "name": rec.Name, "pid": rec.PID}),
		logrus.InfoLevel, "container found; entered its network namespace")
	return newGeneration(sockets, rec, fmt.Sprintf("%s (pid %d)", rec.Name, rec.PID)), nil
}

// warnOnce logs msg the first time key is seen (called with scanMu held).
// The keys name records, whose ids are new at every start of a container:
// across ids the lines are rate-limited by kind (ratelog.go).
func (s *containerSource) warnOnce(key, msg string) {
	if s.warned[key] {
		return
	}
	s.warned[key] = true
	kind, _, _ := strings.Cut(key, ":")
	repeatLog.log("record-"+kind, s.log, logrus.WarnLevel, msg)
}

var errNoContainer = errors.New("container did not appear")

func (s *containerSource) get(ctx context.Context) (*generation, error) {
	for {
		s.mu.Lock()
		g, ch, seen := s.cur, s.changed, s.seen
		s.mu.Unlock()
		if g != nil {
			return g, nil
		}
		// At the first activation the activator's Wants= is starting the
		// unit already; afterwards nobody would.
		if seen || time.Since(s.start) > minKickInterval {
			s.starter.kick()
		}
		// While clients wait, ask again every minKickInterval: a start
		// queued while the crashed unit was still stopping can be lost.
		var again <-chan time.Time
		if s.starter != nil {
			again = time.After(minKickInterval)
		}
		select {
		case <-ch:
		case <-again:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no live record of container %q in %s", errNoContainer, s.name, s.dir.Path)
		}
	}
}

func (s *containerSource) failed(g *generation) {
	if g.rec != nil && !g.rec.Alive() {
		s.rescan()
	}
}

// neverSeen reports whether no container was found within the timeout.
func (s *containerSource) neverSeen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.seen && time.Since(s.start) > s.timeout
}

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
	if st, err := ns.StartTime(pid); err != nil || st != start {
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
	if st, err := ns.StartTime(pid); err != nil || st != start {
		s.Close()
		return nil, fmt.Errorf("pid %d exited while its namespaces were entered", pid)
	}
	return s, nil
}
