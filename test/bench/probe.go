package main

import (
	"fmt"
	"net"
	"time"
)

// sslRequest is PostgreSQL's SSLRequest: length 8, code 80877103. A server
// without TLS answers with the single byte 'N' — its first byte on the wire,
// with no client start-up and no authentication in the way.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// probe connects to addr, sends the SSLRequest and waits for the first
// byte; it returns the time from before the connect to that byte.
func probe(addr string, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return probeConn(c, t0, timeout)
}

func probeConn(c net.Conn, t0 time.Time, timeout time.Duration) (time.Duration, error) {
	c.SetDeadline(t0.Add(timeout))
	if _, err := c.Write(sslRequest); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return 0, fmt.Errorf("no first byte: %w", err)
	}
	d := time.Since(t0)
	if b[0] != 'N' && b[0] != 'S' {
		return d, fmt.Errorf("first byte %q: want 'N' (not PostgreSQL?)", b[0])
	}
	return d, nil
}

func probeCmd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("probe: want ADDR")
	}
	d, err := probe(args[0], 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("%.3f ms\n", float64(d.Microseconds())/1000)
	return nil
}
