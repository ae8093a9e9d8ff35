package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

// serve is the backend: an echo server, and on a second port a server that
// reads until the client's EOF and only then replies (the half-close check).
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7000", "echo `ADDR`")
	afterEOF := fs.String("after-eof-listen", "127.0.0.1:7001", "reply-after-EOF `ADDR`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	echoLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	eofLn, err := net.Listen("tcp", *afterEOF)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- acceptLoop(echoLn, echo) }()
	go func() { errc <- acceptLoop(eofLn, replyAfterEOF) }()
	fmt.Fprintf(os.Stderr, "brobench: serving echo on %s, after-eof on %s\n", echoLn.Addr(), eofLn.Addr())
	return <-errc
}

func acceptLoop(ln net.Listener, h func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go h(c)
	}
}

// echo copies through a user-space buffer rather than splicing: the same
// cost for every candidate, and cheaper than splice for 64-byte messages.
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 128<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF included: the deferred Close sends our FIN
		}
	}
}

func replyAfterEOF(c net.Conn) {
	defer c.Close()
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "reply after eof: %d bytes\n", n)
}
