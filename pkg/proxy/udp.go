package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/pkg/ns"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// UDP has no connections, so bro-proxy keeps one flow per client address: a
// UDP socket created in the backend namespace and connected to the target.
// Datagrams from the client go out on it; replies read from it go back to the
// client from the listening socket, so the client sees them come from the
// address it sent to. A flow ends after UDPIdle without traffic either way,
// or when the backend refuses (its namespace is gone after a restart: the
// next datagram opens a flow into the new one). Each flow counts as an open
// connection for --exit-idle-time and STATUS.

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// maxQueued bounds what a client may send while its flow waits for the
// container during a cold start.
const maxQueued = 64

type udpFlow struct {
	client net.Addr
	conn   *net.UDPConn // nil while the flow waits for the backend
	queue  [][]byte     // datagrams that arrived meanwhile
	last   atomic.Int64 // UnixNano of the last datagram either way
	// refused: a source the allow list refused, remembered for UDPIdle so
	// its datagrams are dropped without a lookup each (and logged once).
	refused bool
	// checked: when the allow list last admitted the source (dispatch's
	// own field): checked again at most every udpRecheck while it sends.
	checked time.Time
}

// udpRecheck is how often a live flow's source is checked again: a flow
// is keyed by the client's address and port, which another user may bind
// once the first one closed its socket.
const udpRecheck = time.Second

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

func (f *udpFlow) idleFor() time.Duration { return time.Since(time.Unix(0, f.last.Load())) }

// udpFlows is one UDP listener's flows, by client address.
type udpFlows struct {
	mu sync.Mutex
	m  map[string]*udpFlow
}

// relayUDP reads datagrams from l until it is closed.
func (p *Proxy) relayUDP(ctx context.Context, l Listener, errc chan<- error) {
	flows := &udpFlows{m: make(map[string]*udpFlow)}
	buf := make([]byte, maxDatagram) // one per listener: flows read with pooled buffers
	for {
		n, addr, err := l.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			if temporaryAcceptError(err) {
				continue
			}
			errc <- fmt.Errorf("read on %s: %w", l.name, err)
			return
		}
		if ctx.Err() != nil {
			return // stopping: no new flows, the drain has begun
		}
		p.dispatch(l, flows, addr, buf[:n])
	}
}

// dispatch sends datagram d from client addr on its flow, starting one if
// there is none. A flow that ended just now (idle, refused) has left the
// map before its socket closed, so a datagram that found it closed anyway
// starts a new flow instead of being dropped.
func (p *Proxy) dispatch(l Listener, flows *udpFlows, addr net.Addr, d []byte) {
	key := addr.String()
	for range 2 {
		flows.mu.Lock()
		f := flows.m[key]
		switch {
		case f == nil && len(flows.m) >= p.udpFlowsMax():
			flows.mu.Unlock()
			p.refused.Add(1)
			p.Log.WithField("conn", key).Debug("UDP flow limit reached; datagram dropped")
			return
		case f == nil:
			if p.Allow != nil {
				// no lock held during the lookup; only this goroutine
				// adds flows, so none appears meanwhile
				flows.mu.Unlock()
				if !p.admitDatagram(l, addr) {
					p.refuseFlow(flows, key, addr)
					return
				}
				flows.mu.Lock()
			}
			// copied: the listener's buffer is reused for the next datagram
			f = &udpFlow{client: addr, queue: [][]byte{append([]byte(nil), d...)}, checked: time.Now()}
			f.touch()
			flows.m[key] = f
			flows.mu.Unlock()
			p.connStart()
			go func() {
				defer p.connEnd()
				p.runFlow(l, f, flows, key)
			}()
			return
		case f.refused:
			flows.mu.Unlock()
			return
		case f.conn == nil:
			if len(f.queue) < maxQueued {
				f.queue = append(f.queue, append([]byte(nil), d...))
			}
			flows.mu.Unlock()
			return
		}
		c := f.conn
		flows.mu.Unlock()
		if p.Allow != nil && time.Since(f.checked) >= udpRecheck {
			if !p.admitDatagram(l, addr) {
				// another socket now: end the flow (runFlow's read fails)
				// and drop this source's datagrams from now on
				c.Close()
				p.refuseFlow(flows, key, addr)
				return
			}
			f.checked = time.Now()
		}
		f.touch()
		_, err := c.Write(d) // a flow's datagram: no copy
		if err == nil {
			p.up.Add(int64(len(d)))
			return
		}
		if !errors.Is(err, net.ErrClosed) {
			p.Log.WithField("conn", key).WithError(err).Debug("UDP datagram not sent to the backend")
			return
		}
		// the flow closed between the lookup and the write: once more,
		// into a new flow
		flows.mu.Lock()
		if flows.m[key] == f {
			delete(flows.m, key)
		}
		flows.mu.Unlock()
	}
}

// refuseFlow remembers a refused source in flows for UDPIdle, in place of
// its flow if it had one.
func (p *Proxy) refuseFlow(flows *udpFlows, key string, addr net.Addr) {
	f := &udpFlow{client: addr, refused: true}
	flows.mu.Lock()
	flows.m[key] = f
	flows.mu.Unlock()
	time.AfterFunc(p.udpIdle(), func() {
		flows.mu.Lock()
		if flows.m[key] == f {
			delete(flows.m, key)
		}
		flows.mu.Unlock()
	})
}

// udpBufs lends a datagram buffer to a flow only while it reads one: a flow
// waiting for replies holds none (64 KiB per flow would be 64 MiB at the
// default --udp-flows-max).
var udpBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// runFlow dials the backend (waiting for the container like a TCP client),
// sends what queued up, and relays replies until the flow is idle or the
// backend refuses. During a cold start a refusal before the first reply
// means the server is not bound yet: the queued datagrams are sent again
// with the same short backoff as a TCP dial, up to ConnectTimeout. The flow
// leaves flows before its socket closes.
func (p *Proxy) runFlow(l Listener, f *udpFlow, flows *udpFlows, key string) {
	var uc *net.UDPConn
	defer func() {
		flows.mu.Lock()
		if flows.m[key] == f {
			delete(flows.m, key)
		}
		flows.mu.Unlock()
		if uc != nil {
			uc.Close()
		}
	}()
	log := p.Log.WithField("conn", f.client.String())
	var c net.Conn
	err := p.dial(l.target, func() *logrus.Entry { return log }, func(ctx context.Context, s ns.Sockets) (err error) {
		c, err = ns.Dial(ctx, s, l.target)
		return err
	})
	if err != nil {
		p.fail.Add(1)
		log.WithError(err).Warn("backend unreachable; dropping the client's datagrams")
		return
	}
	var ok bool
	if uc, ok = c.(*net.UDPConn); !ok {
		c.Close()
		log.Errorf("backend connection is %T, not UDP", c)
		return
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		log.WithError(err).Error("UDP flow")
		return
	}
	flows.mu.Lock()
	f.conn = uc
	first := f.queue
	f.queue = nil
	flows.mu.Unlock()
	send := func(dgrams [][]byte) {
		for _, d := range dgrams {
			if _, err := uc.Write(d); err == nil {
				p.up.Add(int64(len(d)))
			}
		}
	}
	send(first)
	// reply reads one datagram into a pooled buffer and passes it on to
	// the client, waiting in the poller (with the read deadline) and
	// holding no buffer meanwhile.
	reply := func() error {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			b := udpBufs.Get().(*[]byte)
			defer udpBufs.Put(b)
			n, err := unix.Read(int(fd), *b)
			if errors.Is(err, unix.EAGAIN) {
				return false
			}
			if err != nil {
				rerr = err
				return true
			}
			if _, err := l.pc.WriteTo((*b)[:n], f.client); err == nil {
				p.down.Add(int64(n))
			}
			return true
		})
		if err != nil {
			return err
		}
		return rerr
	}
	replied := false
	deadline := time.Now().Add(p.ConnectTimeout)
	delay := retryMin
	for {
		// Until the first reply the flow waits up to ConnectTimeout (a
		// refusal wakes it sooner); then it ends after UDPIdle of silence.
		wait := time.Until(deadline)
		if replied {
			wait = p.udpIdle() - f.idleFor()
		}
		uc.SetReadDeadline(time.Now().Add(wait))
		err := reply()
		switch {
		case err == nil:
			replied = true
			f.touch()
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !replied || f.idleFor() >= p.udpIdle() {
				log.Debug("UDP flow idle; closed")
				return
			}
		case errors.Is(err, syscall.ECONNREFUSED) && !replied && time.Now().Before(deadline):
			time.Sleep(delay)
			delay = min(2*delay, retryMax)
			send(first)
		default:
			log.WithError(err).Debug("UDP flow ended")
			return
		}
	}
}

func (p *Proxy) udpIdle() time.Duration {
	if p.UDPIdle <= 0 {
		return defaultUDPIdle
	}
	return p.UDPIdle
}

func (p *Proxy) udpFlowsMax() int {
	if p.UDPFlowsMax <= 0 {
		return defaultUDPFlowsMax
	}
	return p.UDPFlowsMax
}

const (
	defaultUDPIdle     = 60 * time.Second
	defaultUDPFlowsMax = 1024
)
