package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/internal/rawsys"
	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Proxy accepts on inherited listeners and carries each connection into the
// backend namespace. Per-connection failures are logged and never end Serve;
// a listener failure does.
//
// Only Listeners is required: every other field's zero value means the
// default written next to it (bro-proxy's own defaults), and Serve fills the
// zero fields in before it starts. A Proxy serves once.
type Proxy struct {
	Listeners        []Listener
	Backend          Backend       // nil: Own, the proxy's own network namespace
	ConnectTimeout   time.Duration // retrying a backend that does not listen yet (0: 30s)
	ContainerTimeout time.Duration // waiting for the container's record (0: 60s)
	MaxConns         int           // connections at once; beyond, clients wait in the backlog (0: 4096)
	IdleExit         time.Duration // 0: never exit for idleness
	DrainTimeout     time.Duration // on SIGTERM, how long open connections may finish (0: 10s)
	UDPIdle          time.Duration // a UDP flow without traffic this long ends (0: 60s)
	UDPFlowsMax      int           // UDP flows at once; datagrams of new clients beyond are dropped (0: 1024)
	IdleTimeout      time.Duration // close a connection silent both ways this long (0: never)
	KeepAlive        time.Duration // TCP keepalive idle/interval on both sides (0: 15s on clients only)
	Log              *logrus.Entry // nil: logrus's standard logger
	// Allow, if set, checks every client first (allow.go): a refused one
	// is reset before the backend is asked for anything, and the datagrams
	// of a refused UDP source are dropped. nil: everyone may connect.
	Allow *allow.Guard
	// Status, if set, is called with a one-line summary whenever the
	// counters changed, at most once a second (sd_notify STATUS=).
	Status func(string)

	sem                          chan struct{}
	active, total, fail, refused atomic.Int64
	// starved counts dials waiting for a descriptor (EMFILE): while any
	// does, accept loops leave new clients in the backlog, so that the
	// descriptors ending connections free go to clients already accepted
	// rather than to more clients that would wait for one too.
	starved  atomic.Int32
	up, down atomic.Int64

	noPipes   bool // tests: the relay's copy fallback only
	loops     []*loop
	loopsDone chan struct{}
	next      atomic.Uint32
	settle    *settler

	mu      sync.Mutex
	idle    *time.Timer
	idleC   chan struct{}
	exiting bool
	drained chan struct{} // closed when active drops to 0 while exiting
	// drainedClosed: drained is closed (guarded by mu)
	drainedClosed bool
	lastDesc      atomic.Value // string: what we serve
}

// retry backoff for a backend that is not listening yet: short enough that
// a cold start costs at most a few milliseconds more than the server's own
// start, long enough not to spin.
const (
	retryMin = time.Millisecond
	retryMax = 10 * time.Millisecond
)

var errIdle = errors.New("idle")

// Serve runs until ctx ends (SIGTERM), the proxy has been idle for IdleExit,
// or a listener fails. It returns nil for the first two.
func (p *Proxy) Serve(ctx context.Context) error {
	p.defaults()
	p.sem = make(chan struct{}, p.MaxConns)
	p.idleC = make(chan struct{}, 1)
	p.drained = make(chan struct{})
	p.lastDesc.Store("")
	if p.IdleExit > 0 {
		p.idle = time.AfterFunc(p.IdleExit, p.idleFired)
	}
	if err := p.startLoops(); err != nil {
		return err
	}
	p.settle = newSettler(settleAfter)
	defer func() {
		p.mu.Lock()
		p.settle.stop()
		p.mu.Unlock()
	}()
	errc := make(chan error, len(p.Listeners)+1)
	actx, stopAccept := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, l := range p.Listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.pc != nil {
				p.relayUDP(actx, l, errc)
			} else {
				p.acceptLoop(actx, l, errc)
			}
		}()
	}
	stopStatus := p.statusLoop()
	var err error
	drainFor := p.DrainTimeout
	select {
	case <-ctx.Done():
		p.Log.WithField("active", p.active.Load()).Info("stopping: draining open connections")
	case <-p.idleC:
		p.Log.WithField("idle", p.IdleExit).Info("idle: exiting")
	case err = <-errc:
		if errors.Is(err, errIdle) {
			err = nil
		}
	}
	p.mu.Lock()
	p.exiting = true
	if p.idle != nil {
		p.idle.Stop()
	}
	if p.active.Load() == 0 {
		p.closeDrained()
	}
	p.mu.Unlock()
	stopAccept()
	// Exiting on an error: close the clients still queued rather than leave
	// them to a bro-proxy that fails the same way (drain.go). A clean exit
	// leaves them queued for the next activation, which serves them.
	var queued []int
	if err != nil {
		queued = dupListeners(p.Listeners)
	}
	for _, l := range p.Listeners {
		l.Close() // systemd keeps its own copy: the socket stays bound
	}
	wg.Wait()
	if err != nil {
		p.fail.Add(int64(drainFDs(queued, err.Error(), p.Log)))
	}
	select {
	case <-p.drained:
	case <-time.After(drainFor):
		p.Log.WithField("active", p.active.Load()).Warn("drain timeout: closing open connections")
	}
	// Ends what is still open (after a drain timeout), and refuses the
	// connections still dialling: they are closed as they arrive.
	p.stopLoops()
	stopStatus()
	return err
}

// startLoops starts the relay: one epoll loop per CPU the runtime uses, up
// to maxLoops.
func (p *Proxy) startLoops() error {
	n := min(runtime.GOMAXPROCS(0), maxLoops)
	p.loops = make([]*loop, 0, n)
	p.loopsDone = make(chan struct{}, n)
	for range n {
		l, err := newLoop(p.IdleTimeout, p.connDone)
		if err != nil {
			p.stopLoops()
			return fmt.Errorf("start the relay: %w", err)
		}
		l.pool.off = p.noPipes
		p.loops = append(p.loops, l)
		go func() { l.run(); p.loopsDone <- struct{}{} }()
	}
	return nil
}

// maxLoops: two loops already move more than a core's worth of splices.
const maxLoops = 4

func (p *Proxy) stopLoops() {
	for _, l := range p.loops {
		l.stop()
	}
	for range p.loops {
		<-p.loopsDone
	}
	p.loops = nil
}

// The defaults of the zero fields: bro-proxy's.
const (
	DefaultConnectTimeout   = 30 * time.Second
	DefaultContainerTimeout = 60 * time.Second
	DefaultMaxConns         = 4096
	DefaultDrainTimeout     = 10 * time.Second
)

func (p *Proxy) defaults() {
	if p.Backend == nil {
		p.Backend = Own()
	}
	if p.ConnectTimeout <= 0 {
		p.ConnectTimeout = DefaultConnectTimeout
	}
	if p.ContainerTimeout <= 0 {
		p.ContainerTimeout = DefaultContainerTimeout
	}
	if p.MaxConns <= 0 {
		p.MaxConns = DefaultMaxConns
	}
	if p.DrainTimeout <= 0 {
		p.DrainTimeout = DefaultDrainTimeout
	}
	if p.Log == nil {
		p.Log = logrus.NewEntry(logrus.StandardLogger())
	}
}

// closeDrained says that no connection is open any more while exiting, once:
// a client accepted just as the listeners closed can start and end a
// connection after the count had dropped to 0. Called with p.mu held.
func (p *Proxy) closeDrained() {
	if !p.drainedClosed {
		p.drainedClosed = true
		close(p.drained)
	}
}

func (p *Proxy) idleFired() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active.Load() == 0 && !p.exiting {
		select {
		case p.idleC <- struct{}{}:
		default:
		}
	}
}

func (p *Proxy) connStart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle.churn()
	if p.active.Add(1) == 1 && p.idle != nil {
		p.idle.Stop()
	}
	p.total.Add(1)
}

func (p *Proxy) connEnd() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settle.churn()
	if p.active.Add(-1) == 0 {
		if p.exiting {
			p.closeDrained()
		} else if p.idle != nil {
			p.idle.Reset(p.IdleExit)
		}
	}
}

func (p *Proxy) acceptLoop(ctx context.Context, l Listener, errc chan<- error) {
	rc, err := acceptConn(ctx, l.ln)
	if err != nil {
		errc <- fmt.Errorf("accept on %s: %w", l.name, err)
		return
	}
	var backoff time.Duration
	for {
		select {
		case p.sem <- struct{}{}: // at the limit: stop accepting, the backlog holds clients
		case <-ctx.Done():
			return
		}
		if !p.waitFDs(ctx) {
			<-p.sem
			return
		}
		fd, sa, err := accept(rc)
		if err != nil {
			<-p.sem
			if ctx.Err() != nil { // the file closed, or about to be
				return
			}
			if temporaryAcceptError(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.Log.WithError(err).WithField("retry", backoff).Warn("accept failed; retrying")
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				continue
			}
			errc <- fmt.Errorf("accept on %s: %w", l.name, err)
			return
		}
		backoff = 0
		// Before anything else: a refused client starts no container,
		// dials nothing and counts for no idle timer.
		if p.Allow != nil && !p.admitStream(fd, sa) {
			<-p.sem
			continue
		}
		p.connStart()
		// A backend that listens already: connect here, and on to a
		// relay loop, with no goroutine and no poller in between.
		if bfd, ok := p.dialNow(l.target); ok {
			p.relay(l, fd, sa, bfd)
			continue
		}
		go p.handle(l, fd, sa, errc)
	}
}

// acceptConn returns what accept waits on: the runtime's poller will not
// wait for a listener's RawConn to be readable (net's rawListener refuses
// Read), but it will for an *os.File. The file holds a duplicate of the
// listening socket's descriptor (nonblocking, like the listener's), closed
// when ctx ends, which wakes a waiting accept; the listener itself stays.
func acceptConn(ctx context.Context, ln net.Listener) (syscall.RawConn, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %T has no descriptor", ln)
	}
	lrc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	d, derr := -1, error(nil)
	if err := lrc.Control(func(fd uintptr) { d, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	f := os.NewFile(uintptr(d), ln.Addr().String())
	context.AfterFunc(ctx, func() { f.Close() })
	return f.SyscallConn()
}

// accept takes one client from the listening socket behind rc, waiting in
// the runtime's poller. The client's descriptor is nonblocking and
// close-on-exec, and registered with no poller: it goes to a relay loop.
func accept(rc syscall.RawConn) (int, unix.Sockaddr, error) {
	var fd int
	var sa unix.Sockaddr
	var aerr error
	err := rc.Read(func(lfd uintptr) bool {
		fd, sa, aerr = rawsys.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return !errors.Is(aerr, unix.EAGAIN)
	})
	if err != nil {
		return -1, nil, err
	}
	if aerr != nil {
		return -1, nil, os.NewSyscallError("accept4", aerr)
	}
	return fd, sa, nil
}

func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// handle dials the backend for the client on fd, then hands both sockets
// to a relay loop and returns; the connection's slot is released when the
// loop ends it.
func (p *Proxy) handle(l Listener, fd int, sa unix.Sockaddr, errc chan<- error) {
	release := func() {
		p.connEnd()
		<-p.sem
	}
	// built only when a line is logged: not on every connection's path
	log := func() *logrus.Entry { return p.Log.WithField("conn", sockaddrAddr(sa).String()) }
	var bfd int
	err := p.dial(l.target, log, func(ctx context.Context, s ns.Sockets) (err error) {
		bfd, err = ns.DialFD(ctx, s, l.target)
		return err
	})
	if err != nil {
		defer release()
		p.fail.Add(1)
		// a crash-looping backend fails every client: a few lines per
		// window, then how many more (ratelog.go)
		repeatLog.log("unreachable", log().WithError(err), logrus.WarnLevel, "backend unreachable; closing client")
		unix.Close(fd)
		var never *NeverStartedError
		if errors.As(err, &never) {
			select {
			case errc <- never:
			default:
			}
		}
		return
	}
	p.relay(l, fd, sa, bfd)
}

// dialNow connects to t at once if the current backend has accepted before
// (it is listening) and the connect completes without waiting; otherwise
// handle dials it, holding the client as long as it takes.
func (p *Proxy) dialNow(t ns.Target) (int, bool) {
	g, err := p.Backend.Get(doneCtx)
	if err != nil || !isClosed(g.ready) {
		return -1, false
	}
	return ns.DialNow(g.sockets, t)
}

// doneCtx is a context that has ended: Backend.Get with it does not wait.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// relay hands the client fd (connected from sa) and the backend bfd to a
// relay loop, after the PROXY protocol header and the socket options; the
// connection's slot is released when the loop ends it.
func (p *Proxy) relay(l Listener, fd int, sa unix.Sockaddr, bfd int) {
	release := func() {
		p.connEnd()
		<-p.sem
	}
	log := func() *logrus.Entry { return p.Log.WithField("conn", sockaddrAddr(sa).String()) }
	if l.proxyProto != 0 {
		err := writeProxyHeader(bfd, l.proxyProto, sockaddrAddr(sa), localAddr(fd))
		if err != nil {
			p.fail.Add(1)
			log().WithError(err).Warn("cannot send the PROXY protocol header; closing client")
			unix.Close(fd)
			unix.Close(bfd)
			release()
			return
		}
	}
	if isTCP(sa) {
		tuneSocket(fd, p.KeepAlive, defaultClientKeepAlive)
	}
	if l.target.Network == "tcp" {
		tuneSocket(bfd, p.KeepAlive, 0)
	}
	if p.Log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		log().Debug("connected")
	}
	lp := p.loops[p.next.Add(1)%uint32(len(p.loops))]
	if err := lp.add(fd, bfd, addrPort(sa)); err != nil { // stopping: the drain is over
		unix.Close(fd)
		unix.Close(bfd)
		release()
	}
}

// connDone is called by a relay loop when a connection it owned has ended.
func (p *Proxy) connDone(up, down int64, remote netip.AddrPort, err error) {
	p.up.Add(up)
	p.down.Add(down)
	if err != nil && p.Log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		p.Log.WithField("conn", remote.String()).WithError(err).Debug("connection ended with an error")
	}
	p.connEnd()
	<-p.sem
}

// dial reaches the target in the current backend namespace, holding the
// client while the container starts: it waits for the container's record
// (up to ContainerTimeout), then retries refused connections with a short
// backoff (up to ConnectTimeout). A client that arrives during a cold start
// therefore never sees a reset.
//
// try connects one socket made with s; dial calls it until it succeeds or
// fails for good.
func (p *Proxy) dial(t ns.Target, log func() *logrus.Entry, try func(context.Context, ns.Sockets) error) error {
	gctx, cancel := context.WithTimeout(context.Background(), p.ContainerTimeout)
	g, err := p.Backend.Get(gctx)
	cancel()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.ConnectTimeout)
	defer cancel()
	delay := retryMin
	var last error
	starved := false
	defer func() {
		if starved {
			p.starved.Add(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		p.lastDesc.Store(g.desc)
		wasReady := isClosed(g.ready)
		err := try(ctx, g.sockets)
		if err == nil {
			if g.markReady() {
				repeatLog.log("ready", log().WithFields(logrus.Fields{"target": t.String(), "backend": g.desc, "attempts": attempt,
					"after_ms": time.Since(g.since).Milliseconds()}), logrus.InfoLevel, "backend ready")
			}
			return nil
		}
		last = err
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		p.Backend.Failed(g)
		readyC := g.ready
		if wasReady {
			readyC = nil // already ready once: a refusal now is a restart, back off
		}
		wait := delay
		if outOfFDs(err) {
			// No descriptor for the backend socket: hold the client until
			// other connections end (up to ConnectTimeout) rather than drop
			// it, polling slowly enough not to spin while starved.
			wait, readyC = fdRetry, nil
			if !starved {
				starved = true
				p.starved.Add(1)
				repeatLog.log("starved", log().WithError(err), logrus.WarnLevel,
					"out of descriptors for the backend socket; this client waits and new ones stay in the backlog")
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-readyC:
		case <-ctx.Done():
		}
		timer.Stop()
		delay = min(2*delay, retryMax)
		next, err := p.Backend.Get(ctx)
		if err != nil {
			// the container went away while this client waited: name the
			// one it was waiting for
			last = err
			break
		}
		g = next
	}
	return fmt.Errorf("backend %s in %s not reachable within %s: %w", t, g.desc, p.ConnectTimeout, last)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// fdRetry is how often a dial that ran out of descriptors tries again.
const fdRetry = 50 * time.Millisecond

// waitFDs holds an accept loop while some dial waits for a descriptor
// (starved): accepting then would take the descriptor that dial waits for,
// and with enough clients queued the accepted ones would wait longer than
// ConnectTimeout and be closed. It returns false when ctx ends.
func (p *Proxy) waitFDs(ctx context.Context) bool {
	for p.starved.Load() > 0 {
		t := time.NewTimer(fdRetry / 2)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	return true
}

func outOfFDs(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// retryable errors mean "not listening yet", "the namespace went away" or
// "out of descriptors for now".
func retryable(err error) bool {
	if outOfFDs(err) {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.ENOENT, syscall.EAGAIN, syscall.ENETUNREACH, syscall.EADDRNOTAVAIL, syscall.ETIMEDOUT, ns.ErrClosed, ns.ErrHelperExited} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// statusLoop reports the counters through Status once a second while they
// change. The returned func stops it.
func (p *Proxy) statusLoop() func() {
	if p.Status == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := ""
		for {
			if s := p.StatusLine(); s != last {
				p.Status(s)
				last = s
			}
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// StatusLine summarises the counters.
func (p *Proxy) StatusLine() string {
	what := "waiting for the backend"
	if d, _ := p.lastDesc.Load().(string); d != "" {
		what = "serving " + d
	}
	return fmt.Sprintf("%s: %d active, %d total, %d failed, %d refused, %d B in, %d B out",
		what, p.active.Load(), p.total.Load(), p.fail.Load(), p.refused.Load(), p.up.Load(), p.down.Load())
}
