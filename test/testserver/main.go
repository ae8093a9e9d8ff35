// Command bro-testserver is a tiny line-echo server for the end-to-end tests.
//
// It serves every socket systemd (or Podman, in direct mode) passes through the
// LISTEN_FDS protocol: stream sockets answer each line with "testserver: LINE",
// datagram sockets answer each datagram the same way. The line "whoami" is
// answered with the server's pid, hostname and whether its sockets were
// inherited, so a test can tell that the reply came from inside a container
// (pid 1, the container's hostname) and through socket activation.
//
// Without inherited sockets it listens on --listen ADDR (TCP), so the proxy
// tests can use it as a plain backend. It needs no privileges and is built
// static (CGO_ENABLED=0) to run in an image FROM scratch.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// prefix starts every reply so tests can tell the server answered, not a proxy.
const prefix = "testserver: "

func main() {
	listen := flag.String("listen", "", "TCP address to listen on when no sockets are inherited")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintf(os.Stderr, "bro-testserver: %v\n", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	files := activation.Files(true)
	activated := len(files) > 0
	var listeners []net.Listener
	var packetConns []net.PacketConn
	for _, f := range files {
		// A socket is either a stream listener or a datagram socket; try both
		// because LISTEN_FDS does not say which.
		if l, err := net.FileListener(f); err == nil {
			listeners = append(listeners, l)
		} else if pc, err := net.FilePacketConn(f); err == nil {
			packetConns = append(packetConns, pc)
		} else {
			return fmt.Errorf("use inherited fd %s: %w", f.Name(), err)
		}
		f.Close() // net duplicated it
	}
	if !activated {
		if listen == "" {
			return fmt.Errorf("no sockets inherited (LISTEN_FDS) and no --listen address given")
		}
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", listen, err)
		}
		listeners = append(listeners, l)
	}
	fmt.Fprintf(os.Stderr, "bro-testserver: pid %d serving %d stream and %d datagram sockets (activated=%t)\n",
		os.Getpid(), len(listeners), len(packetConns), activated)

	errc := make(chan error, len(listeners)+len(packetConns))
	for _, l := range listeners {
		go func() { errc <- serveStream(l, activated) }()
	}
	for _, pc := range packetConns {
		go func() { errc <- serveDatagram(pc, activated) }()
	}
	return <-errc
}

func reply(line string, activated bool) string {
	if strings.TrimSpace(line) == "whoami" {
		host, _ := os.Hostname()
		return fmt.Sprintf("%spid=%d hostname=%s activated=%t", prefix, os.Getpid(), host, activated)
	}
	return prefix + line
}

func serveStream(l net.Listener, activated bool) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				if _, err := fmt.Fprintln(c, reply(sc.Text(), activated)); err != nil {
					return
				}
			}
		}()
	}
}

func serveDatagram(pc net.PacketConn, activated bool) error {
	buf := make([]byte, 64*1024)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("read on %s: %w", pc.LocalAddr(), err)
		}
		line := strings.TrimRight(string(buf[:n]), "\n")
		// A failed reply to one peer must not stop the server.
		_, _ = pc.WriteTo([]byte(reply(line, activated)+"\n"), addr)
	}
}
