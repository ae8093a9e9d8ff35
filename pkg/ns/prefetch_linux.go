package ns

import (
	"sync"
	"time"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"golang.org/x/sys/unix"
)

// Prefetch wraps s so that sockets of one kind (domain, typ) are made ahead
// of need: a background goroutine keeps up to n of them ready. A connection
// then takes a ready socket instead of waiting for a round trip to the
// namespace's thread or helper process, which is most of the cost of making
// a socket in another namespace. Other kinds pass through to s.
//
// The ready sockets belong to s's namespace: Close closes them with s, so a
// restarted container's new namespace never gets an old socket.
func Prefetch(s Sockets, domain, typ, n int) Sockets {
	p := &prefetch{Sockets: s, domain: domain, typ: typ | unix.SOCK_NONBLOCK,
		ready: make(chan int, n), want: make(chan struct{}, 1), done: make(chan struct{})}
	p.topUp = time.AfterFunc(time.Hour, p.kick)
	p.topUp.Stop()
	p.wg.Add(1)
	go p.fill()
	p.kick()
	return p
}

type prefetch struct {
	Sockets
	domain, typ int
	ready       chan int
	want        chan struct{}
	done        chan struct{}
	once        sync.Once
	wg          sync.WaitGroup
	topUpMu     sync.Mutex
	topUp       *time.Timer // kicks the filler once takes pause (topUpAfter)
}

// topUpAfter: a pool that still has half its sockets is refilled only once
// no socket has been taken for this long, so that under a steady trickle
// of connections (a few hundred a second) the filler brings half a pool in
// one round trip rather than one socket per connection, and an idle pool
// is still always full (its descriptors a fixed number).
const topUpAfter = 50 * time.Millisecond

func (p *prefetch) kick() {
	select {
	case p.want <- struct{}{}:
	default:
	}
}

// fill tops the pool up whenever it is kicked; on error it stops until the
// next kick (the caller's own Socket call then reports the error).
func (p *prefetch) fill() {
	defer p.wg.Done()
	for {
		select {
		case <-p.want:
		case <-p.done:
			return
		}
		for len(p.ready) < cap(p.ready) {
			fds, err := p.more(cap(p.ready) - len(p.ready))
			for i, fd := range fds {
				select {
				case p.ready <- fd:
				case <-p.done:
					fdpass.CloseAll(fds[i:])
					return
				}
			}
			if err != nil || len(fds) == 0 {
				break
			}
		}
	}
}

// batcher is a Sockets that makes several sockets in one request (the
// helper: one round trip to another process instead of one per socket).
type batcher interface {
	Sockets(domain, typ, proto, n int) ([]int, error)
}

// more makes up to n sockets for the pool: in one batch where the Sockets
// can, else one.
func (p *prefetch) more(n int) ([]int, error) {
	if b, ok := p.Sockets.(batcher); ok {
		return b.Sockets(p.domain, p.typ, 0, n)
	}
	fd, err := p.Sockets.Socket(p.domain, p.typ, 0)
	if err != nil {
		return nil, err
	}
	return []int{fd}, nil
}

func (p *prefetch) Socket(domain, typ, proto int) (int, error) {
	if domain == p.domain && typ|unix.SOCK_NONBLOCK == p.typ && proto == 0 {
		select {
		case fd := <-p.ready:
			// Below half: refill now, in one batch for the whole
			// deficit (under a burst the takes run ahead of the
			// filler). Otherwise once the takes pause.
			if 2*len(p.ready) < cap(p.ready) {
				p.kick()
			} else {
				p.topUpMu.Lock()
				p.topUp.Reset(topUpAfter)
				p.topUpMu.Unlock()
			}
			return fd, nil
		default:
			p.kick()
		}
	}
	return p.Sockets.Socket(domain, typ, proto)
}

func (p *prefetch) Close() error {
	p.topUpMu.Lock()
	p.topUp.Stop()
	p.topUpMu.Unlock()
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
	for {
		select {
		case fd := <-p.ready:
			unix.Close(fd)
		default:
			return p.Sockets.Close()
		}
	}
}
