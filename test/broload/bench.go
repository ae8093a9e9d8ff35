package main

// The benchmark loads (test/bench drives them, docs/bench.md): each runs
// against a byte echo (broload serve --raw), is bounded in time, checks
// every byte it gets back, and prints one JSON line, the result below.
//
//	broload bulk ADDR [--streams 1] [--bytes N]       N bytes each way per stream
//	broload rr ADDR [--conns 1] [--msg 64] [--duration 2s]   round trips
//	broload conn ADDR [--workers 16] [--msg 64] [--duration 2s]  connect, echo, close

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// result is what one benchmark load reports, as one JSON line on stdout.
type result struct {
	Scenario string  `json:"scenario"`
	Seconds  float64 `json:"seconds"`
	Bytes    int64   `json:"bytes,omitempty"`   // echoed and checked
	MBps     float64 `json:"mbps,omitempty"`    // 10^6 bytes per second, one direction
	Ops      int64   `json:"ops,omitempty"`     // round trips or connections
	Rate     float64 `json:"rate,omitempty"`    // ops per second
	P50us    float64 `json:"p50_us,omitempty"`  // round trip, microseconds
	P99us    float64 `json:"p99_us,omitempty"`  //
	P999us   float64 `json:"p999_us,omitempty"` //
	Failures int64   `json:"failures"`
	FirstErr string  `json:"first_error,omitempty"`
	Held     int     `json:"held,omitempty"` // hold: connections open and echoed twice, at once
	OK       int     `json:"ok,omitempty"`   // halfclose: replies that arrived
	N        int     `json:"n,omitempty"`    // streams, connections, workers or clients asked for
}

func printResult(r result) error { return json.NewEncoder(os.Stdout).Encode(r) }

// errOnce counts failures and keeps the first few messages.
type errOnce struct {
	mu   sync.Mutex
	msg  string // the first
	msgs []error
	n    atomic.Int64
}

func (e *errOnce) add(err error) {
	e.n.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.msg == "" {
		e.msg = err.Error()
	}
	if len(e.msgs) < 10 {
		e.msgs = append(e.msgs, err)
	}
}

func (e *errOnce) first() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.msg
}

func (e *errOnce) each(f func(error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, err := range e.msgs {
		f(err)
	}
}

// raiseNoFile lifts the soft descriptor limit to the hard one: a client in
// one process needs a descriptor per connection it holds. (The Go runtime
// does the same at start-up since Go 1.19; this makes it explicit and
// independent of that.)
func raiseNoFile() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// noFile is the soft and hard RLIMIT_NOFILE.
func noFile() (soft, hard uint64) {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 0, 0
	}
	return lim.Cur, lim.Max
}

// pattern is the bulk payload: random bytes, so that a proxy that reorders
// or drops a chunk is caught by the check.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(6)).Read(b)
	return b
}()

// bulk sends --bytes on each stream and checks that exactly the same bytes
// come back. It does not shut down its write side: that would measure
// half-close handling (systemd-socket-proxyd drops the tail of the echo
// then), which halfclose measures on its own.
func bulk(args []string) error {
	fs := flag.NewFlagSet("bulk", flag.ExitOnError)
	streams := fs.Int("streams", 1, "parallel streams")
	size := fs.Int64("bytes", 128<<20, "bytes per stream, each way")
	timeout := fs.Duration("timeout", 60*time.Second, "for the whole run")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var failed errOnce
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, err := bulkStream(addr, *size, i, deadline)
			total.Add(n)
			if err != nil {
				failed.add(fmt.Errorf("stream %d: %w", i, err))
			}
		}(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return printResult(result{Scenario: "bulk", Seconds: secs, Bytes: total.Load(), MBps: float64(total.Load()) / secs / 1e6,
		Failures: failed.n.Load(), FirstErr: failed.first(), N: *streams})
}

func bulkStream(addr string, size int64, seed int, deadline time.Time) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	off := (seed * 7919) % len(pattern)
	werr := make(chan error, 1)
	go func() {
		left, o := size, off
		for left > 0 {
			chunk := pattern[o:]
			if int64(len(chunk)) > left {
				chunk = chunk[:left]
			}
			if _, err := c.Write(chunk); err != nil {
				werr <- err
				return
			}
			left -= int64(len(chunk))
			o = 0
		}
		werr <- nil
	}()
	buf := make([]byte, 256<<10)
	var got int64
	o := off
	for got < size {
		k, err := c.Read(buf[:min(int64(len(buf)), size-got)])
		for b := buf[:k]; len(b) > 0; {
			m := min(len(b), len(pattern)-o)
			if !bytes.Equal(b[:m], pattern[o:o+m]) {
				return got, fmt.Errorf("corrupt echo at byte %d", got)
			}
			got += int64(m)
			b = b[m:]
			o = (o + m) % len(pattern)
		}
		if err != nil {
			return got, fmt.Errorf("echoed %d of %d bytes: %w", got, size, err)
		}
	}
	return got, <-werr
}

// reqResp keeps --conns connections busy with --msg-byte round trips for
// --duration and reports the rate and the latency percentiles.
func reqResp(args []string) error {
	fs := flag.NewFlagSet("rr", flag.ExitOnError)
	conns := fs.Int("conns", 1, "connections")
	msg := fs.Int("msg", 64, "message size")
	dur := fs.Duration("duration", 2*time.Second, "how long to measure")
	timeout := fs.Duration("timeout", 60*time.Second, "for the whole run")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	cs := make([]net.Conn, *conns)
	for i := range cs {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			return fmt.Errorf("rr: connection %d: %w", i, err)
		}
		defer c.Close()
		c.SetDeadline(deadline)
		if err := roundTrip(c, make([]byte, *msg), make([]byte, *msg)); err != nil { // warm
			return fmt.Errorf("rr: connection %d: %w", i, err)
		}
		cs[i] = c
	}
	var failed errOnce
	lat := make([][]time.Duration, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*dur)
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			out, in := bytes.Repeat([]byte{'x'}, *msg), make([]byte, *msg)
			l := make([]time.Duration, 0, 1<<16)
			for {
				t0 := time.Now()
				if !t0.Before(stop) {
					break
				}
				if err := roundTrip(c, out, in); err != nil {
					failed.add(err)
					break
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}(i, c)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	all := slices.Concat(lat...)
	slices.Sort(all)
	return printResult(result{Scenario: "rr", Seconds: secs, Ops: int64(len(all)), Rate: float64(len(all)) / secs,
		P50us: pct(all, 0.50), P99us: pct(all, 0.99), P999us: pct(all, 0.999),
		Failures: failed.n.Load(), FirstErr: failed.first(), N: *conns})
}

func roundTrip(c net.Conn, out, in []byte) error {
	if _, err := c.Write(out); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, in); err != nil {
		return err
	}
	if !bytes.Equal(in, out) {
		return errors.New("wrong echo")
	}
	return nil
}

func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*q), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// connRate: each of --workers connects, echoes --msg bytes and closes, for
// --duration. A refused or reset client retries after 10 ms, as a real one
// would, rather than spinning on failures.
func connRate(args []string) error {
	fs := flag.NewFlagSet("conn", flag.ExitOnError)
	workers := fs.Int("workers", 16, "concurrent workers")
	msg := fs.Int("msg", 64, "message size")
	dur := fs.Duration("duration", 2*time.Second, "how long to measure")
	addr, err := parseWithAddr(fs, args)
	if err != nil {
		return err
	}
	var ok atomic.Int64
	var failed errOnce
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*dur)
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := bytes.Repeat([]byte{'c'}, *msg), make([]byte, *msg)
			for time.Now().Before(stop) {
				err := func() error {
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						return err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					return roundTrip(c, out, in)
				}()
				if err != nil {
					failed.add(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return printResult(result{Scenario: "conn", Seconds: secs, Ops: ok.Load(), Rate: float64(ok.Load()) / secs,
		Failures: failed.n.Load(), FirstErr: failed.first(), N: *workers})
}
