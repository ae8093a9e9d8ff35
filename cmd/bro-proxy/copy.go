package main

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

type closeWriter interface{ CloseWrite() error }

// startPipe copies both ways between client and backend, in two fresh
// goroutines, and calls done once when both directions have ended. io.Copy
// between *net.TCPConn (and *net.UnixConn) splices in the kernel on Linux: no
// byte passes through user space. When one side stops sending (EOF), the
// other side's write half is shut, so a client's shutdown(SHUT_WR) reaches the
// backend and the reply still comes back. An error (a reset) in either
// direction aborts both.
//
// Fresh goroutines, and no third one waiting for them: an idle connection
// costs two small stacks parked in the poller, not also the stack that grew
// while dialling (the last copy to end does the cleanup).
func startPipe(client, backend net.Conn, done func(up, down int64, err error)) {
	sp := &splicePair{client: client, backend: backend, done: done}
	sp.left.Store(2)
	go sp.copy(backend, client, &sp.up)
	go sp.copy(client, backend, &sp.down)
}

type splicePair struct {
	client, backend net.Conn
	done            func(up, down int64, err error)
	left            atomic.Int32
	up, down        int64 // each written by its own copy, read by the last
	mu              sync.Mutex
	err             error
}

func (sp *splicePair) copy(dst, src net.Conn, n *int64) {
	// dst.ReadFrom(src), not io.Copy: io.Copy tries src.WriteTo first, and a
	// TCPConn's WriteTo only splices to unix sockets, falling back to another
	// io.Copy and then ReadFrom. Fewer frames keep an idle connection's two
	// parked goroutines within the smallest stack (2 KiB each instead of 4).
	var k int64
	var err error
	if rf, ok := dst.(io.ReaderFrom); ok {
		k, err = rf.ReadFrom(src)
	} else {
		k, err = io.Copy(dst, src)
	}
	*n = k
	if err == nil {
		closeWrite(dst)
	} else {
		abort(sp.client, sp.backend)
		sp.mu.Lock()
		if sp.err == nil {
			sp.err = firstReal(err)
		}
		sp.mu.Unlock()
	}
	if sp.left.Add(-1) == 0 {
		sp.client.Close()
		sp.backend.Close()
		sp.done(sp.up, sp.down, sp.err)
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// abort closes both ends so that the other direction's copy returns.
func abort(a, b net.Conn) {
	a.Close()
	b.Close()
}

// firstReal drops the errors that only say we closed a side ourselves.
func firstReal(errs ...error) error {
	for _, err := range errs {
		if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return err
		}
		return err
	}
	return nil
}
