package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeRedis answers each connection's first command with reply, and sends
// what it read to got.
func fakeRedis(t *testing.T, reply string) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var b strings.Builder
		for i := 0; i < 5; i++ { // *2, $4, INCR, $N, key
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			b.WriteString(l)
		}
		ch <- b.String()
		_, _ = io.WriteString(c, reply)
	}()
	return ln.Addr().String(), ch
}

func TestRedisIncr(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        int64
		wantErr     string
	}{
		{"integer", ":7\r\n", 7, ""},
		{"error reply", "-ERR wrong type\r\n", 0, ": ERR wrong type"},
		{"not an integer", "+OK\r\n", 0, `"+OK": not an integer`},
		{"bad integer", ":x\r\n", 0, `":x": strconv.ParseInt`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeRedis(t, tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := redisIncr(ctx, addr, "lab:hits")
			if cmd := <-got; cmd != "*2\r\n$4\r\nINCR\r\n$8\r\nlab:hits\r\n" {
				t.Errorf("sent %q; want INCR lab:hits as a RESP array", cmd)
			}
			if tc.wantErr == "" {
				if err != nil || n != tc.want {
					t.Errorf("got %d, %v; want %d, nil", n, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %d, %v; want an error containing %q", n, err, tc.wantErr)
			}
		})
	}
}

// A cache that listens only after a while (its unit is active before Redis
// binds) is retried until it answers.
func TestRedisIncrLateListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	go func() {
		time.Sleep(200 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, ":1\r\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := redisIncr(ctx, addr, "k"); err != nil || n != 1 {
		t.Errorf("got %d, %v; want 1, nil", n, err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://lab:secret@db:5432/lab", "postgres://lab:xxx@db:5432/lab"},
		{"postgres://lab@db/lab", "postgres://lab@db/lab"},
		{"postgres://db/lab", "postgres://db/lab"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := redact(tc.in); got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}
