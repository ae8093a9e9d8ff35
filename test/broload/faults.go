package main

// The fault modes of broload (issue 7): a misbehaving backend and
// misbehaving clients. Each mode is bounded in time and prints one summary
// line, like the others.
//
//	broload backend --listen ADDR --behave close|reset|silent [--bytes N]
//	broload probe ADDR [--timeout D]           one client: how did it end?
//	broload reset ADDR [-n 20]                 clients that reset mid-stream
//	broload slow ADDR [-n 10] [--for 10s]      clients sending 1 byte/s
//	broload stream ADDR [-n 50] [--timeout D]  clients streaming until the end

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// backend misbehaves after reading the client's first line: close sends
// --bytes bytes of a promised larger reply and closes (FIN); reset sends
// them and resets (RST); silent reads forever and never answers.
func backend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address")
	behave := fs.String("behave", "close", "close, reset or silent")
	nbytes := fs.Int("bytes", 1000, "bytes sent before closing or resetting")
	fs.Parse(args)
	switch *behave {
	case "close", "reset", "silent":
	default:
		return fmt.Errorf("--behave %q: want close, reset or silent", *behave)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "broload: backend (%s) on %s\n", *behave, ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			if *behave == "silent" {
				io.Copy(io.Discard, r)
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			fmt.Fprintf(c, "promised %d bytes\n", 10**nbytes)
			c.Write([]byte(strings.Repeat("x", *nbytes)))
			if *behave == "reset" {
				c.(*net.TCPConn).SetLinger(0) // close sends RST
			}
		}()
	}
}

// outcome names how a connection ended for its client.
func outcome(err error) string {
	var ne net.Error
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "error"
	}
}

// probe: one client sends a line and reads until the connection ends.
// It prints "ended: eof|reset|timeout|error after N bytes" and exits 0: the
// test asserts the outcome. Only a failed connect exits 1.
func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "for the whole connection")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", addr, *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	io.WriteString(c, "probe\n")
	n, err := io.Copy(io.Discard, c)
	fmt.Printf("ended: %s after %d bytes\n", outcome(err), n)
	return nil
}

// reset: N clients, one after another, each gets its echo, then sends half
// a line and resets the connection (SO_LINGER 0).
func reset(args []string) error {
	fs := flag.NewFlagSet("reset", flag.ExitOnError)
	n := fs.Int("n", 20, "clients")
	timeout := fs.Duration("timeout", 10*time.Second, "per client")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	ok := 0
	for i := 0; i < *n; i++ {
		err := func() error {
			c, err := net.DialTimeout("tcp", addr, *timeout)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(*timeout))
			fmt.Fprintf(c, "client %d\n", i)
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				c.Close()
				return err
			}
			io.WriteString(c, "half a li")
			c.(*net.TCPConn).SetLinger(0)
			return c.Close()
		}()
		if err != nil {
			fmt.Fprintf(os.Stderr, "client %d: %v\n", i, err)
			continue
		}
		ok++
	}
	fmt.Printf("%d/%d clients reset mid-stream\n", ok, *n)
	if ok != *n {
		return fmt.Errorf("%d clients failed before their reset", *n-ok)
	}
	return nil
}

// slow: N clients each send one byte a second (never a newline) for --for,
// then close. Prints how many stayed connected the whole time.
func slow(args []string) error {
	fs := flag.NewFlagSet("slow", flag.ExitOnError)
	n := fs.Int("n", 10, "clients")
	dur := fs.Duration("for", 10*time.Second, "how long each client trickles")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	var held atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, *dur)
			if err != nil {
				return
			}
			defer c.Close()
			end := time.Now().Add(*dur)
			for time.Now().Before(end) {
				if _, err := c.Write([]byte("s")); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
			held.Add(1)
		}()
	}
	wg.Wait()
	fmt.Printf("%d/%d slow clients held for %s\n", held.Load(), *n, *dur)
	return nil
}

// stream: N concurrent clients each send a line every 10 ms and read the
// echoes until the connection ends or --timeout passes. Prints how they
// ended: "N clients: E eof, R reset, T timeout, X error, C connect failed;
// L lines echoed". A clean end is eof or reset; a timeout means a hang.
func stream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	n := fs.Int("n", 50, "concurrent clients")
	timeout := fs.Duration("timeout", 60*time.Second, "for the whole run")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var mu sync.Mutex
	count := map[string]int{}
	var lines atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			how := func() string {
				c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
				if err != nil {
					return "connect"
				}
				defer c.Close()
				c.SetDeadline(deadline)
				go func() {
					for {
						if _, err := fmt.Fprintf(c, "client %d\n", i); err != nil {
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return outcome(err)
					}
					lines.Add(1)
				}
			}()
			mu.Lock()
			count[how]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	fmt.Printf("%d clients: %d eof, %d reset, %d timeout, %d error, %d connect failed; %d lines echoed\n",
		*n, count["eof"], count["reset"], count["timeout"], count["error"], count["connect"], lines.Load())
	return nil
}
