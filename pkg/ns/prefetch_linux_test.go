package ns

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// batches is a Sockets that makes real sockets in this namespace and counts
// the batch requests the prefetch filler sends it.
type batches struct {
	current
	mu    sync.Mutex
	sizes []int
}

func (b *batches) Sockets(domain, typ, proto, n int) ([]int, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
	fds := make([]int, 0, n)
	for range n {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fds, err
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func (b *batches) requests() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

// waitFull waits until the pool holds all its sockets again.
func waitFull(t *testing.T, p *prefetch) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(p.ready) < cap(p.ready); {
		if time.Now().After(deadline) {
			t.Fatalf("pool holds %d of %d sockets after 5 s", len(p.ready), cap(p.ready))
		}
		time.Sleep(time.Millisecond)
	}
}

// A pool refills in batches: while it holds half or more, a take refills
// nothing until takes pause (topUpAfter), then one request brings the whole
// deficit; below half, a take refills at once.
func TestPrefetchRefillsInBatches(t *testing.T) {
	b := &batches{}
	p := Prefetch(b, unix.AF_INET, unix.SOCK_STREAM, 16).(*prefetch)
	defer p.Close()
	waitFull(t, p)
	if got := b.requests(); len(got) != 1 || got[0] != 16 {
		t.Fatalf("first fill: requests %v; want [16]", got)
	}
	take := func(n int) {
		for range n {
			fd, err := p.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
		}
	}
	take(8) // 8 left: half, no refill yet
	time.Sleep(topUpAfter / 5)
	if got := b.requests(); len(got) != 1 {
		t.Fatalf("after 8 of 16 taken: requests %v; want no refill before the pause", got)
	}
	waitFull(t, p)
	if got := b.requests(); len(got) != 2 || got[1] != 8 {
		t.Fatalf("after the pause: requests %v; want [16 8]", got)
	}
	take(9) // 7 left: below half, refilled at once
	waitFull(t, p)
	if got := b.requests(); len(got) != 3 || got[2] != 9 {
		t.Fatalf("after 9 taken: requests %v; want [16 8 9]", got)
	}
}
