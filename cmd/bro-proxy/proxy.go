package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
)

// Proxy accepts on inherited listeners and carries each connection into the
// backend namespace. Per-connection failures are logged and never end Serve;
// a listener failure does.
type Proxy struct {
	Listeners        []listener
	Source           source
	ConnectTimeout   time.Duration // retrying a backend that does not listen yet
	ContainerTimeout time.Duration // waiting for the container's record
	MaxConns         int
	IdleExit         time.Duration // 0: never exit for idleness
	DrainTimeout     time.Duration // on SIGTERM, how long open connections may finish
	UDPIdle          time.Duration // a UDP flow without traffic this long ends (0: 60s)
	UDPFlowsMax      int           // UDP flows at once; datagrams of new clients beyond are dropped (0: 1024)
	IdleTimeout      time.Duration // close a connection silent both ways this long (0: never)
	KeepAlive        time.Duration // TCP keepalive idle/interval on both sides (0: Go's default on clients)
	Log              *logrus.Entry
	// Status, if set, is called with a one-line summary whenever the
	// counters changed, at most once a second (sd_notify STATUS=).
	Status func(string)

	sem                          chan struct{}
	active, total, fail, refused atomic.Int64
	up, down                     atomic.Int64

	sweeper *idleSweeper
	settle  *settler

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
	p.sem = make(chan struct{}, p.MaxConns)
	p.idleC = make(chan struct{}, 1)
	p.drained = make(chan struct{})
	p.lastDesc.Store("")
	if p.IdleExit > 0 {
		p.idle = time.AfterFunc(p.IdleExit, p.idleFired)
	}
	if p.IdleTimeout > 0 {
		p.sweeper = newIdleSweeper(p.IdleTimeout)
		defer p.sweeper.close()
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
	stopStatus()
	return err
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

func (p *Proxy) acceptLoop(ctx context.Context, l listener, errc chan<- error) {
	var backoff time.Duration
	for {
		select {
		case p.sem <- struct{}{}: // at the limit: stop accepting, the backlog holds clients
		case <-ctx.Done():
			return
		}
		c, err := l.ln.Accept()
		if err != nil {
			<-p.sem
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
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
		p.connStart()
		go p.handle(l, c, errc)
	}
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

// handle dials the backend for client c, then hands both to startPipe and
// returns; the connection's slot is released when the copies end.
func (p *Proxy) handle(l listener, c net.Conn, errc chan<- error) {
	release := func() {
		p.connEnd()
		<-p.sem
	}
	// built only when a line is logged: not on every connection's path
	log := func() *logrus.Entry { return p.Log.WithField("conn", c.RemoteAddr().String()) }
	b, err := p.dial(l.target, log)
	if err != nil {
		defer release()
		p.fail.Add(1)
		// a crash-looping backend fails every client: a few lines per
		// window, then how many more (ratelog.go)
		repeatLog.log("unreachable", log().WithError(err), logrus.WarnLevel, "backend unreachable; closing client")
		c.Close()
		if cs, ok := p.Source.(*containerSource); ok && errors.Is(err, errNoContainer) && cs.neverSeen() {
			select {
			case errc <- fmt.Errorf("container %q did not start within %s", cs.name, p.ContainerTimeout):
			default:
			}
		}
		return
	}
	if l.proxyProto != 0 {
		h, err := proxyHeader(l.proxyProto, c.RemoteAddr(), c.LocalAddr())
		if err == nil {
			_, err = b.Write(h)
		}
		if err != nil {
			p.fail.Add(1)
			log().WithError(err).Warn("cannot send the PROXY protocol header; closing client")
			c.Close()
			b.Close()
			release()
			return
		}
	}
	setKeepAlive(c, p.KeepAlive)
	setKeepAlive(b, p.KeepAlive)
	var pair *connPair
	if p.sweeper != nil {
		pair = p.sweeper.add(c, b)
	}
	if p.Log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		log().Debug("connected")
	}
	startPipe(c, b, func(up, down int64, err error) {
		if pair != nil {
			p.sweeper.remove(pair)
		}
		p.up.Add(up)
		p.down.Add(down)
		if err != nil && p.Log.Logger.IsLevelEnabled(logrus.DebugLevel) {
			log().WithError(err).Debug("connection ended with an error")
		}
		release()
	})
}

// dial reaches the target in the current backend namespace, holding the
// client while the container starts: it waits for the container's record
// (up to ContainerTimeout), then retries refused connections with a short
// backoff (up to ConnectTimeout). A client that arrives during a cold start
// therefore never sees a reset.
func (p *Proxy) dial(t ns.Target, log func() *logrus.Entry) (net.Conn, error) {
	gctx, cancel := context.WithTimeout(context.Background(), p.ContainerTimeout)
	g, err := p.Source.get(gctx)
	cancel()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.ConnectTimeout)
	defer cancel()
	delay := retryMin
	var last error
	for attempt := 1; ; attempt++ {
		p.lastDesc.Store(g.desc)
		wasReady := isClosed(g.ready)
		c, err := ns.Dial(ctx, g.sockets, t)
		if err == nil {
			if g.markReady() {
				repeatLog.log("ready", log().WithFields(logrus.Fields{"target": t.String(), "backend": g.desc, "attempts": attempt,
					"after_ms": time.Since(g.since).Milliseconds()}), logrus.InfoLevel, "backend ready")
			}
			return c, nil
		}
		last = err
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		p.Source.failed(g)
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
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-readyC:
		case <-ctx.Done():
		}
		timer.Stop()
		delay = min(2*delay, retryMax)
		next, err := p.Source.get(ctx)
		if err != nil {
			// the container went away while this client waited: name the
			// one it was waiting for
			last = err
			break
		}
		g = next
	}
	return nil, fmt.Errorf("backend %s in %s not reachable within %s: %w", t, g.desc, p.ConnectTimeout, last)
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
