package proxy

import (
	"errors"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/internal/rawsys"
	"golang.org/x/sys/unix"
)

// The relay: one epoll loop per CPU moves the bytes of every established
// connection, in both directions, with splice(2) through pipes borrowed from
// the loop's pool (pipe_linux.go).
//
// Why a loop of our own and not the runtime's poller: with the runtime, every
// direction of every connection waits in a goroutine (RawConn.Read, or
// ReadFrom's splice), so an idle connection parks two goroutine stacks, and
// Go's splice keeps a pipe pair per direction for the connection's life. A
// connection handed to a loop is two descriptors in its epoll set and one
// small struct: nothing else while it is idle. The descriptors are
// registered edge-triggered for input, output and peer shutdown once and
// never modified: the loop remembers what each side can do (readable,
// writable) and clears it only on EAGAIN, so there is no epoll_ctl per
// transfer. A direction reads only while its pipe has room and writes only
// while the other side takes bytes: a slow reader stops the reads from the
// fast writer (backpressure) with at most one pipe of bytes in flight.
//
// Dialling (the cold-start hold, retries, PROXY protocol header) still
// happens in a goroutine per client; that goroutine ends when it hands the
// two sockets to a loop.

// side indexes a connection's two sockets.
const (
	client  = 0
	backend = 1
)

type conn struct {
	fd     [2]int32 // client, backend
	rd     [2]bool  // the side may have bytes to read
	wr     [2]bool  // the side may take bytes
	hup    [2]bool  // the side's peer shut down or reset: read until EOF or the error
	live   bool     // between add and end
	slot   int32
	gen    uint32  // bumped at every reuse of the slot
	dir    [2]flow // dir[client]: client to backend (up); dir[backend]: backend to client (down)
	last   int64   // nanotime of the last byte either way (--idle-timeout)
	remote netip.AddrPort
}

// flow is one direction: bytes read from one side, written to the other.
type flow struct {
	p       *pipe  // nil unless bytes are in flight through a pipe
	pending []byte // bytes in flight without a pipe (no pipe could be had)
	eof     bool   // the source side sent FIN
	shut    bool   // the destination's write side is shut: this direction is over
	copying bool   // splice does not apply (EINVAL): read and write instead
	bulk    bool   // a read filled the buffer: splice until drained
	n       int64
}

func (f *flow) inFlight() int {
	if f.p != nil {
		return f.p.n
	}
	return len(f.pending)
}

type loop struct {
	epfd     int
	epf      *os.File        // epfd, in the runtime's poller
	epr      syscall.RawConn // epf's
	deadline time.Time       // epf's read deadline; zero: none
	wakeR    int             // eventfd: commands are queued
	pool     pipePool
	buf      []byte // the copy buffer, for flows without a pipe
	idle     time.Duration
	// now is the loop's clock, read once per wake: what a connection's
	// last byte, the idle sweep and the timers are measured with.
	now    time.Time
	events []unix.EpollEvent
	got    int                // events read by poll
	poll   func(uintptr) bool // epr.Read's callback, made once: no closure per wait
	// onEnd is called in the loop when a connection has ended, with the
	// bytes it moved each way and why it ended (nil: an orderly end).
	onEnd func(up, down int64, remote netip.AddrPort, err error)

	// Connections live in chunks, allocated once and reused: no object
	// per connection for the collector, no pointer that moves. A slot
	// ended in the loop goes back to free only after the batch of events
	// it was ended in (freeing), so no event of that batch can meet a
	// slot already given to a new connection.
	mu      sync.Mutex
	chunks  []*[chunkSize]conn
	free    []int32
	cmds    []func()
	open    int
	quit    bool
	freeing []int32 // the loop's own
}

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

func (l *loop) at(slot int32) *conn { return &l.chunks[slot>>chunkBits][slot&(chunkSize-1)] }

// wakeSlot tags the eventfd in the epoll set.
const wakeSlot = -1

func newLoop(idle time.Duration, onEnd func(up, down int64, remote netip.AddrPort, err error)) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	// nonblocking, so that os.NewFile puts it in the runtime's poller
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, err
	}
	epf := os.NewFile(uintptr(epfd), "relay epoll")
	epr, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		unix.Close(efd)
		return nil, err
	}
	l := &loop{epfd: epfd, epf: epf, epr: epr, wakeR: efd, idle: idle, onEnd: onEnd,
		events: make([]unix.EpollEvent, 128)}
	l.poll = func(uintptr) bool {
		l.got = rawsys.EpollNow(l.epfd, l.events)
		return l.got > 0
	}
	return l, nil
}

// add hands the connected pair to the loop, which owns them from now on and
// calls onEnd once when the connection has ended either way.
func (l *loop) add(cfd, bfd int, remote netip.AddrPort) error {
	l.mu.Lock()
	if l.quit {
		l.mu.Unlock()
		return errLoopStopped
	}
	if len(l.free) == 0 {
		base := int32(len(l.chunks)) << chunkBits
		l.chunks = append(l.chunks, new([chunkSize]conn))
		for i := int32(chunkSize - 1); i >= 0; i-- {
			l.free = append(l.free, base+i)
		}
	}
	slot := l.free[len(l.free)-1]
	l.free = l.free[:len(l.free)-1]
	c := l.at(slot)
	gen := c.gen + 1
	*c = conn{fd: [2]int32{int32(cfd), int32(bfd)}, rd: [2]bool{true, true}, wr: [2]bool{true, true},
		live: true, slot: slot, gen: gen, last: nanotime(), remote: remote}
	l.open++
	l.mu.Unlock()
	for side, fd := range [2]int{cfd, bfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: slot, Pad: int32(side)}
		if err := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			// not in the loop yet as far as events go: end it from the
			// loop, which owns it now (unless the loop ended it already)
			l.do(func() {
				if c.live && c.gen == gen {
					l.end(c, err)
				}
			})
			return nil
		}
	}
	return nil
}

var errLoopStopped = errors.New("relay stopped")

// do queues f to run in the loop.
func (l *loop) do(f func()) {
	l.mu.Lock()
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.wakeR, one[:])
}

// closeAll ends every open connection (the drain timeout).
func (l *loop) closeAll() {
	l.do(func() {
		for _, c := range l.liveConns() {
			l.end(c, errDrainTimeout)
		}
	})
}

// liveConns lists the connections open now (called in the loop).
func (l *loop) liveConns() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var cs []*conn
	for _, ch := range l.chunks {
		for i := range ch {
			if ch[i].live {
				cs = append(cs, &ch[i])
			}
		}
	}
	return cs
}

var errDrainTimeout = errors.New("drain timeout")

// stop ends the loop; connections still open are closed.
func (l *loop) stop() {
	l.closeAll()
	l.do(func() {
		l.mu.Lock()
		l.quit = true
		l.mu.Unlock()
	})
}

func nanotime() int64 { return time.Now().UnixNano() }

// run is the loop. It returns after stop, with every descriptor it owned
// closed.
func (l *loop) run() {
	events := l.events
	batch := make([]*conn, 0, len(events))
	wake := &conn{} // stands for the eventfd in a batch
	var sweepEvery time.Duration
	if l.idle > 0 {
		sweepEvery = min(max(l.idle/4, 10*time.Millisecond), 5*time.Second)
	}
	l.now = time.Now()
	nextSweep := l.now.Add(sweepEvery)
	quietSince := l.now
	haveChunks := false // as of the last batch: something for quiet to free
	for {
		timeout := time.Duration(-1)
		if sweepEvery > 0 {
			timeout = max(nextSweep.Sub(l.now), time.Millisecond)
		}
		if (len(l.pool.idle) > 0 || haveChunks) && (timeout < 0 || timeout > quietAfter) {
			timeout = quietAfter
		}
		n := l.wait(timeout)
		l.now = time.Now()
		batch = batch[:0]
		l.mu.Lock()
		for i := 0; i < n; i++ {
			if events[i].Fd == wakeSlot {
				batch = append(batch, wake)
				continue
			}
			batch = append(batch, l.at(events[i].Fd))
		}
		l.mu.Unlock()
		for i, c := range batch {
			ev := events[i]
			if c == wake {
				l.commands()
				continue
			}
			if !c.live {
				continue
			}
			side := ev.Pad
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.rd[side] = true
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.hup[side] = true
			}
			if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.wr[side] = true
			}
			l.pump(c)
		}
		if n > 0 {
			quietSince = l.now
		} else if l.now.Sub(quietSince) >= quietAfter {
			l.quiet()
		}
		if sweepEvery > 0 && !l.now.Before(nextSweep) {
			l.sweep()
			nextSweep = l.now.Add(sweepEvery)
		}
		l.mu.Lock()
		l.free = append(l.free, l.freeing...)
		l.freeing = l.freeing[:0]
		haveChunks = len(l.chunks) > 0
		quit := l.quit
		l.mu.Unlock()
		if quit {
			l.pool.trim()
			l.epf.Close() // the epoll descriptor
			unix.Close(l.wakeR)
			return
		}
	}
}

// quietAfter: a loop that saw no event for this long gives back what it
// kept for the next burst (quiet).
const quietAfter = time.Second

// quiet closes the idle pipes and, with no connection open, frees the
// connection chunks, and returns the memory to the kernel: after a burst of
// thousands of connections the proxy shrinks back to its baseline.
func (l *loop) quiet() {
	l.pool.trim()
	l.mu.Lock()
	freed := l.open == 0 && len(l.chunks) > 0
	if freed {
		l.chunks, l.free = nil, nil
	}
	l.mu.Unlock()
	if freed {
		debug.FreeOSMemory()
	}
}

// wait returns the next events, waiting up to timeout (< 0: no limit) in
// the runtime's poller for the epoll descriptor to become readable, not in
// epoll_wait: a thread blocked in a system call makes sysmon poll every
// 20 µs to take its P away, which cost more CPU than the relay itself at a
// few hundred connections a second (issue 12, pgbench -C). The epoll_wait
// calls themselves never wait (timeout 0). The events are in l.events.
//
// The poller's Read looks first (poll) and parks only if nothing is ready:
// a look of our own before it would be a third epoll_wait per park.
func (l *loop) wait(timeout time.Duration) int {
	l.setDeadline(timeout)
	l.got = 0
	if err := l.epr.Read(l.poll); err != nil {
		return 0 // the deadline
	}
	return l.got
}

// setDeadline makes the wait end within timeout of l.now (< 0: no limit).
// A deadline already set that is still ahead and no later than wanted is
// kept: an early wake costs one pass of the loop, where setting it before
// every wait cost a timer update per wake (the quiet timer moves on with
// every event).
func (l *loop) setDeadline(timeout time.Duration) {
	if timeout < 0 {
		if !l.deadline.IsZero() {
			l.epf.SetReadDeadline(time.Time{})
			l.deadline = time.Time{}
		}
		return
	}
	want := l.now.Add(timeout)
	if !l.deadline.IsZero() && l.deadline.After(l.now) && !l.deadline.After(want) {
		return
	}
	l.epf.SetReadDeadline(want)
	l.deadline = want
}

func (l *loop) commands() {
	var b [8]byte
	unix.Read(l.wakeR, b[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

// sweep closes the connections silent both ways for the idle timeout.
func (l *loop) sweep() {
	cutoff := l.now.UnixNano() - int64(l.idle)
	for _, c := range l.liveConns() {
		if c.last <= cutoff {
			l.end(c, nil)
		}
	}
}

// pump moves bytes both ways until neither direction can go on.
func (l *loop) pump(c *conn) {
	for progress := true; progress; {
		progress = false
		for src := range 2 {
			p, err := l.move(c, src)
			if err != nil {
				l.end(c, err)
				return
			}
			progress = progress || p
		}
	}
	if c.dir[client].shut && c.dir[backend].shut {
		l.end(c, nil)
	}
}

// move advances the direction from side src: it flushes what is in flight
// to the other side, reads more while there is room, and shuts the other
// side's write half once the source has ended and nothing is left in flight.
//
// Small transfers (a query, a reply) go through the loop's buffer: read,
// write, two system calls, and a short read says the socket is drained, so
// no third call to hear EAGAIN. A read that fills the buffer marks the
// direction bulk: from then on it splices, through a pipe from the pool,
// until a splice finds only a small amount waiting.
func (l *loop) move(c *conn, src int) (bool, error) {
	f := &c.dir[src]
	if f.shut {
		return false, nil
	}
	dst := 1 - src
	progress := false
	// 1. flush
	if f.inFlight() > 0 && c.wr[dst] {
		n, err := l.flush(f, int(c.fd[dst]))
		if n > 0 {
			progress = true
			f.n += int64(n)
			c.last = l.now.UnixNano()
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			c.wr[dst] = false
		case err != nil:
			return false, err
		}
		if f.p != nil && f.p.n == 0 {
			l.pool.put(f.p)
			f.p = nil
		}
	}
	// 2. read while there is room
	if !f.eof && c.rd[src] {
		var n int
		var err error
		switch {
		case f.inFlight() == 0 && !f.bulk:
			n, err = l.copy(c, src)
		case f.inFlight() == 0 || (f.p != nil && f.p.n < f.p.size):
			n, err = l.splice(f, int(c.fd[src]))
			if n > 0 && n < smallTransfer && f.p.n == n {
				f.bulk = false // small again: back to read and write
			}
		default:
			return progress, nil // full: wait for the other side
		}
		switch {
		case n > 0:
			progress = true
			c.last = l.now.UnixNano()
		case err == nil:
			f.eof = true
			progress = true
		case errors.Is(err, unix.EAGAIN):
			// with bytes in the pipe, EAGAIN may mean the pipe is full:
			// the source is known to be drained only when it was empty
			if f.inFlight() == 0 {
				c.rd[src] = false
			}
		default:
			return false, err
		}
		if f.p != nil && f.p.n == 0 {
			l.pool.put(f.p)
			f.p = nil
		}
	}
	// 3. the source ended and everything was delivered: pass on the FIN
	if f.eof && f.inFlight() == 0 {
		f.shut = true
		progress = true
		if err := rawsys.Shutdown(int(c.fd[dst]), unix.SHUT_WR); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return false, err
		}
	}
	return progress, nil
}

// copy reads from side src into the loop's buffer and writes what it read
// to the other side; what the other side does not take at once waits in
// the direction's pending bytes (a copy, freed once written). A short read
// means the socket's queue was empty: the side is not readable any more
// (unless its peer has shut down: then read on until EOF).
func (l *loop) copy(c *conn, src int) (int, error) {
	f := &c.dir[src]
	dst := 1 - src
	if l.buf == nil {
		l.buf = make([]byte, copyBufSize)
	}
	n, err := readFD(int(c.fd[src]), l.buf)
	if n <= 0 {
		return 0, err
	}
	if n == len(l.buf) && !f.copying && !l.pool.off {
		f.bulk = true
	} else if n < len(l.buf) && !c.hup[src] {
		c.rd[src] = false
	}
	m := 0
	if c.wr[dst] {
		m, err = sendFD(int(c.fd[dst]), l.buf[:n])
		switch {
		case errors.Is(err, unix.EAGAIN):
			c.wr[dst] = false
			m = 0
		case err != nil:
			return 0, err
		}
	}
	f.n += int64(m)
	if m < n {
		f.pending = append([]byte(nil), l.buf[m:n]...)
	}
	return n, nil
}

// splice reads from fd into the direction's pipe, taking one from the pool
// first. n == 0 with a nil error is EOF. Without a pipe (none to be had, or
// a socket splice cannot read) it copies instead.
func (l *loop) splice(f *flow, fd int) (int, error) {
	if f.p == nil && !f.copying {
		f.p = l.pool.get()
	}
	if f.p == nil {
		f.bulk = false // copy from now on; try the pool again later
		return 0, unix.EAGAIN
	}
	for {
		n, err := rawsys.Splice(fd, f.p.w, f.p.size-f.p.n)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EINVAL) && f.p.n == 0 {
			f.copying, f.bulk = true, false
			l.pool.put(f.p)
			f.p = nil
			return 0, unix.EAGAIN
		}
		if n > 0 {
			f.p.n += int(n)
		}
		return int(n), err
	}
}

func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := rawsys.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func sendFD(fd int, b []byte) (int, error) {
	for {
		n, err := rawsys.Send(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// smallTransfer: a splice that finds less than this in the socket turns a
// bulk direction back to read and write.
const smallTransfer = 16 << 10

// copyBufSize is the loop's buffer: a read that fills it starts splicing.
const copyBufSize = 64 << 10

// flush writes what is in flight to fd.
func (l *loop) flush(f *flow, fd int) (int, error) {
	if f.p != nil {
		for {
			n, err := rawsys.Splice(f.p.r, fd, f.p.n)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if n > 0 {
				f.p.n -= int(n)
			}
			return int(n), err
		}
	}
	n, err := sendFD(fd, f.pending)
	if n > 0 {
		if n == len(f.pending) {
			f.pending = nil
		} else {
			f.pending = f.pending[n:]
		}
	}
	return n, err
}

// end closes both sockets of c and reports it. A reset on one side is passed
// on as a reset of the other (SO_LINGER 0), so that neither peer mistakes an
// aborted connection for a complete one.
func (l *loop) end(c *conn, err error) {
	if !c.live {
		return
	}
	if err != nil && !errors.Is(err, errDrainTimeout) {
		for _, fd := range c.fd {
			unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
	}
	for i := range c.dir {
		if p := c.dir[i].p; p != nil {
			l.pool.put(p) // closed, unless empty
			c.dir[i].p = nil
		}
		c.dir[i].pending = nil
	}
	// closing drops them from the epoll set: they are the only references
	rawsys.Close(int(c.fd[client]))
	rawsys.Close(int(c.fd[backend]))
	up, down, remote := c.dir[client].n, c.dir[backend].n, c.remote
	l.mu.Lock()
	c.live = false
	l.open--
	l.mu.Unlock()
	l.freeing = append(l.freeing, c.slot)
	l.onEnd(up, down, remote, err)
}
