// Command broload is the one load tool of the end-to-end tests (test/bats)
// and the benchmarks (test/bench): the client and the backend, so that what
// a test asserts (a reply after a half-close, N of N clients served, N
// connections held at once) does not depend on the quirks of nc or curl, and
// a benchmark measures every candidate with the same client. It is built
// static (make build: CGO_ENABLED=0), so that it also runs inside a busybox
// container as the backend of a rootless Network=none container.
//
//	broload serve  --listen ADDR [--after-eof|--raw] [--after-eof-listen ADDR]
//	                                           line echo (or a byte echo, or one reply after EOF)
//	broload halfclose ADDR [-n 20] [--json]    reply after shutdown(SHUT_WR)?
//	broload clients ADDR [-n 1000] [--hold D]  N concurrent clients, each echoed
//	broload hold ADDR [-n 1000] [--ready-file F]  N connections open at once, each
//	                                           echoed twice, held until SIGTERM
//
// bench.go adds the benchmark loads (one JSON line each): bulk, rr, conn.
// faults.go adds the fault modes: backend, probe, reset, slow, stream.
//
// Every mode is bounded in time (--timeout) and prints one summary line. A
// client needs a descriptor per connection: broload raises its soft
// RLIMIT_NOFILE to the hard limit first, and hold refuses an -n that does
// not fit.
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
		fmt.Fprintln(os.Stderr, "usage: broload serve|halfclose|clients|hold|bulk|rr|conn|backend|probe|reset|slow|stream ...")
		os.Exit(2)
	}
	raiseNoFile()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "halfclose":
		err = halfclose(os.Args[2:])
	case "clients":
		err = clients(os.Args[2:])
	case "hold": // hold.go
		err = hold(os.Args[2:])
	case "bulk": // bench.go
		err = bulk(os.Args[2:])
	case "rr":
		err = reqResp(os.Args[2:])
	case "conn":
		err = connRate(os.Args[2:])
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
	raw := fs.Bool("raw", false, "echo bytes as they come, unframed (the benchmarks' backend)")
	alsoAfterEOF := fs.String("after-eof-listen", "", "also serve --after-eof on this `ADDR`, from the same process")
	proxyProto := fs.Bool("proxy-protocol", false, "expect a PROXY protocol v1 or v2 header and answer with the client it names")
	fs.Parse(args)
	h := lineEcho(*proxyProto)
	switch {
	case *afterEOF:
		h = replyAfterEOF
	case *raw:
		h = rawEcho
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	if *alsoAfterEOF != "" {
		eln, err := net.Listen("tcp", *alsoAfterEOF)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "broload: serving after-eof on %s\n", eln.Addr())
		go func() { errc <- acceptLoop(eln, replyAfterEOF) }()
	}
	fmt.Fprintf(os.Stderr, "broload: serving on %s\n", ln.Addr())
	go func() { errc <- acceptLoop(ln, h) }()
	return <-errc
}

func acceptLoop(ln net.Listener, h func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			h(c)
		}()
	}
}

func replyAfterEOF(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	fmt.Fprintf(c, "reply after eof: %d bytes\n", n)
}

// rawEcho copies through a user-space buffer rather than splicing: the same
// cost behind every candidate a benchmark compares, and cheaper than splice
// for 64-byte messages. The buffer starts small and grows to 128 KiB at the
// first read that fills it, so that ten thousand held connections that each
// echoed a line cost the backend 2 KiB each, not 128.
func rawEcho(c net.Conn) {
	buf := make([]byte, 2<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if n == len(buf) && len(buf) < 128<<10 {
				buf = make([]byte, 128<<10)
			}
		}
		if err != nil {
			return // EOF included: acceptLoop's Close sends our FIN
		}
	}
}

func lineEcho(proxyProto bool) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		if proxyProto {
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
	}
}

// halfclose: each client writes a line, shuts down its write side, and must
// still read the backend's reply (broload serve --after-eof).
func halfclose(args []string) error {
	fs := flag.NewFlagSet("halfclose", flag.ExitOnError)
	n := fs.Int("n", 20, "clients, one after another")
	timeout := fs.Duration("timeout", 10*time.Second, "per client")
	asJSON := fs.Bool("json", false, "print one JSON line, and exit 0 whatever the replies")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	ok := 0
	start := time.Now()
	var failed errOnce
	for i := 0; i < *n; i++ {
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			failed.add(fmt.Errorf("client %d: %w", i, err))
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
			failed.add(fmt.Errorf("client %d: reply %q, %v", i, reply, err))
		}
	}
	if *asJSON {
		return printResult(result{Scenario: "halfclose", Seconds: time.Since(start).Seconds(), OK: ok, N: *n,
			Failures: failed.n.Load(), FirstErr: failed.first()})
	}
	failed.each(func(err error) { fmt.Fprintln(os.Stderr, err) })
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
