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
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

func (f *udpFlow) idleFor() time.Duration { return time.Since(time.Unix(0, f.last.Load())) }

// relayUDP reads datagrams from l until it is closed.
func (p *Proxy) relayUDP(ctx context.Context, l Listener, errc chan<- error) {
	var mu sync.Mutex
	flows := make(map[string]*udpFlow)
	buf := make([]byte, maxDatagram)
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
		key := addr.String()
		mu.Lock()
		f := flows[key]
		switch {
		case f == nil && len(flows) >= p.udpFlowsMax():
			mu.Unlock()
			p.refused.Add(1)
			p.Log.WithField("conn", key).Debug("UDP flow limit reached; datagram dropped")
			continue
		case f == nil:
			// copied: buf is reused for the next datagram
			f = &udpFlow{client: addr, queue: [][]byte{append([]byte(nil), buf[:n]...)}}
			f.touch()
			flows[key] = f
			mu.Unlock()
			p.connStart()
			go func() {
				defer p.connEnd()
				p.runFlow(l, f, &mu)
				mu.Lock()
				delete(flows, key)
				mu.Unlock()
			}()
			continue
		case f.conn == nil:
			if len(f.queue) < maxQueued {
				f.queue = append(f.queue, append([]byte(nil), buf[:n]...))
			}
			mu.Unlock()
			continue
		}
		c := f.conn
		mu.Unlock()
		f.touch()
		if _, err := c.Write(buf[:n]); err == nil { // a flow's datagram: no copy
			p.up.Add(int64(n))
		}
	}
}

// runFlow dials the backend (waiting for the container like a TCP client),
// sends what queued up, and relays replies until the flow is idle or the
// backend refuses. During a cold start a refusal before the first reply
// means the server is not bound yet: the queued datagrams are sent again
// with the same short backoff as a TCP dial, up to ConnectTimeout.
func (p *Proxy) runFlow(l Listener, f *udpFlow, mu *sync.Mutex) {
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
	uc, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		log.Errorf("backend connection is %T, not UDP", c)
		return
	}
	defer uc.Close()
	mu.Lock()
	f.conn = uc
	first := f.queue
	f.queue = nil
	mu.Unlock()
	send := func(dgrams [][]byte) {
		for _, d := range dgrams {
			if _, err := uc.Write(d); err == nil {
				p.up.Add(int64(len(d)))
			}
		}
	}
	send(first)
	buf := make([]byte, maxDatagram)
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
		n, err := uc.Read(buf)
		switch {
		case err == nil:
			replied = true
			f.touch()
			if _, err := l.pc.WriteTo(buf[:n], f.client); err == nil {
				p.down.Add(int64(n))
			}
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
