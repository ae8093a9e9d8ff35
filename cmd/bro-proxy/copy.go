package main

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

type closeWriter interface{ CloseWrite() error }

// pipe copies both ways between client and backend until both directions
// end. io.Copy between *net.TCPConn (and *net.UnixConn) splices in the
// kernel on Linux: no byte passes through user space. When one side stops
// sending (EOF), the other side's write half is shut, so a client's
// shutdown(SHUT_WR) reaches the backend and the reply still comes back.
// An error (a reset) in either direction aborts both.
func pipe(client, backend net.Conn) (up, down int64, err error) {
	type result struct {
		n   int64
		err error
	}
	upc := make(chan result, 1)
	go func() {
		n, err := io.Copy(backend, client)
		if err == nil {
			closeWrite(backend)
		} else {
			abort(client, backend)
		}
		upc <- result{n, err}
	}()
	down, derr := io.Copy(client, backend)
	if derr == nil {
		closeWrite(client)
	} else {
		abort(client, backend)
	}
	r := <-upc
	client.Close()
	backend.Close()
	return r.n, down, firstReal(r.err, derr)
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
