package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// hold opens -n connections, --parallel at a time, echoes a line on each as
// it opens, and once all are open echoes a second line on every one: a
// connection the proxy dropped meanwhile fails the second echo, so "held"
// means open and served at the same moment. It then prints the summary
// (text, or one JSON line with --json), writes it to --ready-file, and
// holds every connection until SIGTERM or SIGINT (or --hold passes, or with
// --stdin, stdin closes), then closes them all.
//
// At the first failure it stops opening more (the connections already in
// flight finish): a proxy that ran out of descriptors fails every further
// client the same way, and each failure costs a --timeout. So "held 3300 of
// 9900" is what the proxy reached, not a count of random losses.
//
// The echo is line-agnostic: the reply must end with the line sent, so both
// broload serve (line echo, "echo: " prefix) and serve --raw answer it.
//
// Text mode exits 1 unless all -n were held; --json exits 0 whatever was
// held (the benchmark records what each proxy reaches).
func hold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	n := fs.Int("n", 1000, "connections held at once")
	parallel := fs.Int("parallel", 64, "connections being opened at once")
	timeout := fs.Duration("timeout", 5*time.Second, "per connection: connect and each echo")
	holdFor := fs.Duration("hold", 10*time.Minute, "hold at most this long")
	ready := fs.String("ready-file", "", "write the summary line to `FILE` once all are open and checked")
	stdin := fs.Bool("stdin", false, "also end the hold when stdin closes")
	asJSON := fs.Bool("json", false, "print the summary as one JSON line, and exit 0 whatever was held")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	// Descriptors: one per connection, plus the runtime's few and stdio.
	if soft, hard := noFile(); uint64(*n)+32 > soft {
		return fmt.Errorf("hold: -n %d needs %d descriptors; the open file limit is %d (hard %d)", *n, *n+32, soft, hard)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var stopping atomic.Bool
	go func() {
		<-sig
		stopping.Store(true)
		sig <- syscall.SIGTERM // for the hold below
	}()

	start := time.Now()
	cs := make([]net.Conn, *n)
	var failed errOnce
	var next atomic.Int64
	// pass runs f on every index (open) or every held connection (check),
	// --parallel at a time, until the first failure or a signal.
	pass := func(f func(i int) error) {
		next.Store(0)
		var wg sync.WaitGroup
		for w := 0; w < max(*parallel, 1); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stopping.Load() && failed.n.Load() == 0 {
					i := int(next.Add(1) - 1)
					if i >= *n {
						return
					}
					if err := f(i); err != nil {
						failed.add(fmt.Errorf("connection %d: %w", i, err))
					}
				}
			}()
		}
		wg.Wait()
	}
	pass(func(i int) error {
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			return err
		}
		if err := echoLine(c, fmt.Sprintf("hold %d open", i), *timeout); err != nil {
			c.Close()
			return err
		}
		cs[i] = c
		return nil
	})
	opened := failed.n.Load() == 0
	pass(func(i int) error {
		c := cs[i]
		if c == nil {
			return nil
		}
		if err := echoLine(c, fmt.Sprintf("hold %d check", i), *timeout); err != nil {
			c.Close()
			cs[i] = nil
			return fmt.Errorf("second echo, after %s: %w", map[bool]string{true: "all were open", false: "the first failure"}[opened], err)
		}
		return nil
	})
	held := 0
	for _, c := range cs {
		if c != nil {
			held++
		}
	}
	r := result{Scenario: "hold", Seconds: time.Since(start).Seconds(), Held: held, N: *n,
		Failures: failed.n.Load(), FirstErr: failed.first()}
	var line string
	if *asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		line = string(b) + "\n"
	} else {
		line = fmt.Sprintf("held %d/%d connections, each echoed twice\n", held, *n)
		failed.each(func(err error) { fmt.Fprintln(os.Stderr, err) })
	}
	os.Stdout.WriteString(line)
	if *ready != "" {
		if err := writeFileAtomic(*ready, line); err != nil {
			return err
		}
	}

	if *stdin {
		go func() { io.Copy(io.Discard, os.Stdin); sig <- syscall.SIGTERM }()
	}
	select {
	case <-sig:
	case <-time.After(*holdFor):
	}
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
	if !*asJSON && held != *n {
		return fmt.Errorf("hold: %d of %d connections not held; first failure: %s", *n-held, *n, r.FirstErr)
	}
	return nil
}

// echoLine writes want and a newline, and reads until a newline: the line
// must end with want.
func echoLine(c net.Conn, want string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, want+"\n"); err != nil {
		return err
	}
	var buf [128]byte
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			if line := strings.TrimSpace(string(buf[:i])); !strings.HasSuffix(line, want) {
				return fmt.Errorf("echo %q; want %q", line, want)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("no echo after %d bytes: %w", n, err)
		}
		if n == len(buf) {
			return errors.New("echo longer than 128 bytes without a newline")
		}
	}
}

// writeFileAtomic writes content to a temporary file next to path and
// renames it: whoever waits for path never reads half a line.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
