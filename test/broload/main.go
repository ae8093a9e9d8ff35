// Command broload drives and serves the end-to-end tests and benchmarks of
// bro-proxy: it is the client and the backend, so that what a test asserts
// (a reply after a half-close, N of N clients served) does not depend on the
// quirks of nc or curl.
//
//	broload serve  --listen ADDR [--after-eof]   line echo; or one reply after EOF
//	broload halfclose ADDR [-n 20]              reply after shutdown(SHUT_WR)?
//	broload clients ADDR [-n 1000] [--hold D]   N concurrent clients, each echoed
//
// faults.go adds the fault modes: backend, probe, reset, slow, stream.
//
// Every mode is bounded in time (--timeout) and prints one summary line.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: broload serve|halfclose|clients ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "halfclose":
		err = halfclose(os.Args[2:])
	case "clients":
		err = clients(os.Args[2:])
	case "backend": // faults.go
		err = backend(os.Args[2:])
	case "probe":
		err = probe(os.Args[2:])
	case "reset":
		err = reset(os.Args[2:])
	case "slow":
		err = slow(os.Args[2:])
	case "stream":
		err = stream(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "broload: %v\n", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address")
	afterEOF := fs.Bool("after-eof", false, "read until EOF, then reply once with the byte count")
	proxyProto := fs.Bool("proxy-protocol", false, "expect a PROXY protocol v1 or v2 header and answer with the client it names")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "broload: serving on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			if *afterEOF {
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "reply after eof: %d bytes\n", n)
				return
			}
			r := bufio.NewReader(c)
			if *proxyProto {
				src, dst, err := readProxyHeader(r)
				if err != nil {
					fmt.Fprintf(c, "bad PROXY header: %v\n", err)
					return
				}
				fmt.Fprintf(c, "proxied client=%s dst=%s\n", src, dst)
			}
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if _, err := fmt.Fprintf(c, "echo: %s\n", sc.Text()); err != nil {
					return
				}
			}
		}()
	}
}

// halfclose: each client writes a line, shuts down its write side, and must
// still read the backend's reply (broload serve --after-eof).
func halfclose(args []string) error {
	fs := flag.NewFlagSet("halfclose", flag.ExitOnError)
	n := fs.Int("n", 20, "clients, one after another")
	timeout := fs.Duration("timeout", 10*time.Second, "per client")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	ok := 0
	for i := 0; i < *n; i++ {
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "client %d: %v\n", i, err)
			continue
		}
		c.SetDeadline(time.Now().Add(*timeout))
		io.WriteString(c, "half-close test\n")
		c.(*net.TCPConn).CloseWrite()
		reply, err := io.ReadAll(c)
		c.Close()
		if err == nil && strings.HasPrefix(string(reply), "reply after eof: 16 bytes") {
			ok++
		} else {
			fmt.Fprintf(os.Stderr, "client %d: reply %q, %v\n", i, reply, err)
		}
	}
	fmt.Printf("%d/%d replies after half-close\n", ok, *n)
	if ok != *n {
		return fmt.Errorf("%d replies missing", *n-ok)
	}
	return nil
}

// clients: N concurrent connections, all open at once (each holds its
// connection for --hold after its echo), each must get its echo back.
func clients(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ExitOnError)
	n := fs.Int("n", 1000, "concurrent clients")
	hold := fs.Duration("hold", 0, "keep each connection open this long after its echo")
	timeout := fs.Duration("timeout", 30*time.Second, "for the whole run")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr sync.Once
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := func() error {
				c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(deadline)
				want := fmt.Sprintf("client %d", i)
				fmt.Fprintln(c, want)
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return err
				}
				if !strings.HasSuffix(strings.TrimSpace(line), want) {
					return fmt.Errorf("got %q", line)
				}
				time.Sleep(*hold)
				return nil
			}()
			if err != nil {
				failed.Add(1)
				firstErr.Do(func() { fmt.Fprintf(os.Stderr, "client %d: %v\n", i, err) })
				return
			}
			served.Add(1)
		}(i)
	}
	wg.Wait()
	fmt.Printf("%d/%d clients served, %d failed\n", served.Load(), *n, failed.Load())
	if served.Load() != int64(*n) {
		return fmt.Errorf("%d clients not served", int64(*n)-served.Load())
	}
	return nil
}

// parseWithAddr parses flags around one ADDR argument, before or after them.
func parseWithAddr(fs *flag.FlagSet, args []string) (string, error) {
	var addr string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addr, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if addr == "" && fs.NArg() == 1 {
		addr = fs.Arg(0)
	} else if fs.NArg() != 0 || addr == "" {
		return "", fmt.Errorf("%s: want exactly one ADDR", fs.Name())
	}
	return addr, nil
}

// readProxyHeader parses a PROXY protocol v1 line or v2 block (the subset
// bro-proxy sends: TCP over IPv4/IPv6, UNKNOWN, LOCAL).
func readProxyHeader(r *bufio.Reader) (src, dst string, err error) {
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	head, err := r.Peek(12)
	if err != nil {
		return "", "", err
	}
	if string(head) == sig {
		var h [16]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return "", "", err
		}
		body := make([]byte, int(h[14])<<8|int(h[15]))
		if _, err := io.ReadFull(r, body); err != nil {
			return "", "", err
		}
		switch {
		case h[12] == 0x20:
			return "local", "local", nil
		case h[13] == 0x11 && len(body) >= 12:
			return fmt.Sprintf("%s:%d", net.IP(body[0:4]), int(body[8])<<8|int(body[9])),
				fmt.Sprintf("%s:%d", net.IP(body[4:8]), int(body[10])<<8|int(body[11])), nil
		case h[13] == 0x21 && len(body) >= 36:
			return fmt.Sprintf("[%s]:%d", net.IP(body[0:16]), int(body[32])<<8|int(body[33])),
				fmt.Sprintf("[%s]:%d", net.IP(body[16:32]), int(body[34])<<8|int(body[35])), nil
		}
		return "", "", fmt.Errorf("v2 command %#x family %#x not understood", h[12], h[13])
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(strings.TrimSuffix(line, "\r\n"))
	switch {
	case len(f) == 2 && f[0] == "PROXY" && f[1] == "UNKNOWN":
		return "unknown", "unknown", nil
	case len(f) == 6 && f[0] == "PROXY":
		return net.JoinHostPort(f[2], f[4]), net.JoinHostPort(f[3], f[5]), nil
	}
	return "", "", fmt.Errorf("v1 line %q not understood", line)
}
