package proxy

import (
	"golang.org/x/sys/unix"
)

// Splice pipes, taken only while bytes are in flight.
//
// splice(2) moves bytes from a socket into a pipe and from the pipe into the
// other socket without copying them through user space, but a pipe is two
// descriptors and a kernel buffer. Go's own splice (TCPConn.ReadFrom) keeps
// one pipe per direction for the life of the connection: six descriptors per
// idle connection. Here, as in HAProxy and pasta, a direction takes a pipe
// from its loop's pool when data arrives and gives it back as soon as the
// pipe is empty again, so an idle connection owns nothing but its two
// sockets. The pool keeps a few empty pipes for the next burst and lets them
// go when the loop has been quiet for a while: an idle pipe still counts
// against the user's pipe budget (fs.pipe-user-pages-soft).

// pipeSizes are the capacities asked for with F_SETPIPE_SZ, largest first:
// what one splice can move at once, so fewer system calls per byte (Go's
// own splice uses 1 MiB; systemd-socket-proxyd 256 KiB). The first that
// fits fs.pipe-max-size wins; an unprivileged user past
// fs.pipe-user-pages-soft gets EPERM for all of them and keeps the default
// (one page then): the relay still works, with more system calls per byte.
var pipeSizes = []int{1 << 20, 256 << 10}

// pipeIdleMax is how many empty pipes a loop keeps for the next burst.
const pipeIdleMax = 4

type pipe struct {
	r, w int
	size int // capacity, bytes
	n    int // bytes in the pipe
}

type pipePool struct {
	idle []*pipe
	// made, failed: pipes created and pipe2 failures, for the tests and
	// the status line
	made, failed int64
	off          bool // tests: no pipes, as if pipe2 always failed
}

// get returns an empty pipe, or nil when none can be had (EMFILE: the
// relay falls back to copying through its loop's buffer).
func (pp *pipePool) get() *pipe {
	if pp.off {
		return nil
	}
	if n := len(pp.idle); n > 0 {
		p := pp.idle[n-1]
		pp.idle = pp.idle[:n-1]
		return p
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		pp.failed++
		return nil
	}
	pp.made++
	p := &pipe{r: fds[0], w: fds[1], size: 4096}
	for _, want := range pipeSizes {
		if sz, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, want); err == nil {
			p.size = sz
			return p
		}
	}
	if sz, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil {
		p.size = sz
	}
	return p
}

// put takes back a pipe. Only an empty pipe may be reused: one that still
// holds bytes (its connection was aborted) is closed.
func (pp *pipePool) put(p *pipe) {
	if p.n == 0 && len(pp.idle) < pipeIdleMax {
		pp.idle = append(pp.idle, p)
		return
	}
	p.close()
}

// trim closes the idle pipes.
func (pp *pipePool) trim() {
	for _, p := range pp.idle {
		p.close()
	}
	pp.idle = pp.idle[:0]
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}
