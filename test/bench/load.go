package main

import (
	"bufio"
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
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is what one load run reports, as one JSON line on stdout.
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
	Held     int     `json:"held,omitempty"` // idle: connections open and echoed at once
	OK       int     `json:"ok,omitempty"`   // halfclose: replies that arrived
	N        int     `json:"n,omitempty"`
}

type errOnce struct {
	once sync.Once
	msg  string
	n    atomic.Int64
}

func (e *errOnce) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.msg = err.Error() })
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "bulk, rr, conn, idle or halfclose")
	addr := fs.String("addr", "", "`HOST:PORT` to connect to")
	streams := fs.Int("streams", 1, "bulk: parallel streams")
	size := fs.Int64("bytes", 128<<20, "bulk: bytes per stream")
	conns := fs.Int("conns", 1, "rr, idle: connections")
	workers := fs.Int("workers", 16, "conn: concurrent workers")
	msg := fs.Int("msg", 64, "rr, conn: message size")
	dur := fs.Duration("duration", 2*time.Second, "rr, conn: how long to measure")
	n := fs.Int("n", 20, "halfclose: clients")
	timeout := fs.Duration("timeout", 60*time.Second, "bound for the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("load: --addr is required")
	}
	deadline := time.Now().Add(*timeout)
	var r result
	var err error
	switch *scenario {
	case "bulk":
		r, err = bulk(*addr, *streams, *size, deadline)
	case "rr":
		r, err = reqResp(*addr, *conns, *msg, *dur, deadline)
	case "conn":
		r, err = connRate(*addr, *workers, *msg, *dur)
	case "idle":
		r, err = idle(*addr, *conns, deadline)
	case "halfclose":
		r, err = halfclose(*addr, *n)
	default:
		return fmt.Errorf("load: scenario %q: want bulk, rr, conn, idle or halfclose", *scenario)
	}
	if err != nil || *scenario == "idle" { // idle printed its line itself
		return err
	}
	r.Scenario = *scenario
	return json.NewEncoder(os.Stdout).Encode(r)
}

// pattern is the bulk payload: random bytes, so that a proxy that reorders
// or drops a chunk is caught by the check.
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(6)).Read(b)
	return b
}()

// bulk sends size bytes on each stream and checks that exactly the same
// bytes come back. It does not shut down its write side: that would measure
// half-close handling (systemd-socket-proxyd drops the tail of the echo
// then), which the halfclose scenario measures on its own.
func bulk(addr string, streams int, size int64, deadline time.Time) (result, error) {
	var failed errOnce
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, err := bulkStream(addr, size, i, deadline)
			total.Add(n)
			if err != nil {
				failed.add(fmt.Errorf("stream %d: %w", i, err))
			}
		}(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return result{Seconds: secs, Bytes: total.Load(), MBps: float64(total.Load()) / secs / 1e6,
		Failures: failed.n.Load(), FirstErr: failed.msg, N: streams}, nil
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

// reqResp keeps conns connections busy with msg-byte round trips for dur.
func reqResp(addr string, conns, msg int, dur time.Duration, deadline time.Time) (result, error) {
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			return result{}, fmt.Errorf("rr: connection %d: %w", i, err)
		}
		defer c.Close()
		c.SetDeadline(deadline)
		if err := roundTrip(c, make([]byte, msg), make([]byte, msg)); err != nil { // warm
			return result{}, fmt.Errorf("rr: connection %d: %w", i, err)
		}
		cs[i] = c
	}
	var failed errOnce
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(dur)
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			out, in := bytes.Repeat([]byte{'x'}, msg), make([]byte, msg)
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
	return result{Seconds: secs, Ops: int64(len(all)), Rate: float64(len(all)) / secs,
		P50us: pct(all, 0.50), P99us: pct(all, 0.99), P999us: pct(all, 0.999),
		Failures: failed.n.Load(), FirstErr: failed.msg, N: conns}, nil
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

// connRate: each worker connects, echoes msg bytes, closes, for dur.
func connRate(addr string, workers, msg int, dur time.Duration) (result, error) {
	var ok atomic.Int64
	var failed errOnce
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(dur)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := bytes.Repeat([]byte{'c'}, msg), make([]byte, msg)
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
					// a refused or reset client retries after a pause, as a
					// real one would, rather than spinning on failures
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return result{Seconds: secs, Ops: ok.Load(), Rate: float64(ok.Load()) / secs,
		Failures: failed.n.Load(), FirstErr: failed.msg, N: workers}, nil
}

// idle opens conns connections, echoes 64 bytes on each, prints how many are
// held (one JSON line) and keeps them open until stdin closes or the
// deadline; then it closes them all and exits.
func idle(addr string, conns int, deadline time.Time) (result, error) {
	var failed errOnce
	cs := make([]net.Conn, conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // opening 64 at a time keeps SYN queues calm
	start := time.Now()
	for i := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				failed.add(err)
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := roundTrip(c, bytes.Repeat([]byte{'i'}, 64), make([]byte, 64)); err != nil {
				failed.add(err)
				c.Close()
				return
			}
			c.SetDeadline(time.Time{})
			cs[i] = c
		}(i)
	}
	wg.Wait()
	held := 0
	for _, c := range cs {
		if c != nil {
			held++
		}
	}
	// Held now means held: a connection the proxy dropped since would fail
	// a second echo. Check them all before reporting.
	for i, c := range cs {
		if c == nil {
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := roundTrip(c, bytes.Repeat([]byte{'j'}, 64), make([]byte, 64)); err != nil {
			failed.add(err)
			c.Close()
			cs[i] = nil
			held--
		}
		c.SetDeadline(time.Time{})
	}
	r := result{Scenario: "idle", Seconds: time.Since(start).Seconds(), Held: held, N: conns,
		Failures: failed.n.Load(), FirstErr: failed.msg}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return r, err
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	}
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
	return r, nil
}

// halfclose: each client sends a line, shuts down its write side, and must
// still read the reply the backend sends only after that EOF.
func halfclose(addr string, n int) (result, error) {
	var failed errOnce
	ok := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		err := func() error {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "half-close test\n"); err != nil {
				return err
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return fmt.Errorf("no reply after half-close: %w", err)
			}
			if want := "reply after eof: 16 bytes"; strings.TrimSpace(line) != want {
				return fmt.Errorf("got %q; want %q", line, want)
			}
			return nil
		}()
		if err != nil {
			failed.add(err)
			continue
		}
		ok++
	}
	return result{Seconds: time.Since(start).Seconds(), OK: ok, N: n, Failures: failed.n.Load(), FirstErr: failed.msg}, nil
}
