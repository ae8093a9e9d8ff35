package main

import (
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Per-connection idle timeout. The bytes of a connection never pass through
// user space (splice), so bro-proxy cannot see them go by; the kernel can:
// TCP_INFO reports, per socket, the milliseconds since data was last sent and
// received. One sweeper per proxy reads it for every open connection a few
// times per timeout and closes connections whose both sides have been silent
// for longer, so a dead or stalled client does not hold a backend (and its
// locks, for a database) forever.

type idleSweeper struct {
	timeout time.Duration
	mu      sync.Mutex
	conns   map[*connPair]struct{}
	stop    chan struct{}
}

type connPair struct{ client, backend net.Conn }

func newIdleSweeper(timeout time.Duration) *idleSweeper {
	s := &idleSweeper{timeout: timeout, conns: make(map[*connPair]struct{}), stop: make(chan struct{})}
	go s.run()
	return s
}

func (s *idleSweeper) add(c, b net.Conn) *connPair {
	p := &connPair{c, b}
	s.mu.Lock()
	s.conns[p] = struct{}{}
	s.mu.Unlock()
	return p
}

func (s *idleSweeper) remove(p *connPair) {
	s.mu.Lock()
	delete(s.conns, p)
	s.mu.Unlock()
}

func (s *idleSweeper) close() { close(s.stop) }

func (s *idleSweeper) run() {
	every := min(max(s.timeout/4, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		s.mu.Lock()
		var idle []*connPair
		for p := range s.conns {
			if d, ok := silence(p); ok && d >= s.timeout {
				idle = append(idle, p)
			}
		}
		s.mu.Unlock()
		for _, p := range idle {
			p.client.Close() // the copies see the close and end both directions
			p.backend.Close()
		}
	}
}

// silence is how long neither socket of p carried data, by TCP_INFO; false
// if neither side is TCP.
func silence(p *connPair) (time.Duration, bool) {
	best, ok := time.Duration(1<<62), false
	for _, c := range []net.Conn{p.client, p.backend} {
		if d, found := tcpSilence(c); found {
			best, ok = min(best, d), true
		}
	}
	return best, ok
}

func tcpSilence(c net.Conn) (time.Duration, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil || ierr != nil {
		return 0, false
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, true
}

// setKeepAlive turns on TCP keepalive probes after idle, every idle, three
// times, on a TCP connection.
func setKeepAlive(c net.Conn, idle time.Duration) {
	if tc, ok := c.(*net.TCPConn); ok && idle > 0 {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: idle, Count: 3})
	}
}
