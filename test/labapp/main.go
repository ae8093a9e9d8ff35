// Command bro-labapp is the web application of the networking lab's section-4
// example (test/bats/640-lab.bats): every HTTP request is answered by asking
// the database and the cache, both reached by container name on a private
// network quadlet.
//
// For each request it counts the request in Redis (INCR, a few lines of RESP
// over a fresh TCP connection) and asks PostgreSQL for its version and the
// time (one connection, opened on the first request and again after an
// error). The answer is one line:
//
//	lab: postgres 15.14 at 2026-12-02T14:40:01Z, redis hits 3, web HOSTNAME
//
// A request that cannot reach either gets 502 and the error. It listens on
// --listen (default :8080) and needs no privileges; built static
// (CGO_ENABLED=0) to run in an image FROM scratch.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	listen := flag.String("listen", ":8080", "TCP address to serve HTTP on")
	pgURL := flag.String("postgres", "postgres://lab:lab@db:5432/lab", "PostgreSQL connection URL")
	redisAddr := flag.String("redis", "cache:6379", "Redis host:port")
	flag.Parse()

	host, _ := os.Hostname()
	app := &app{pgURL: *pgURL, redisAddr: *redisAddr, host: host}
	srv := &http.Server{Addr: *listen, Handler: app, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Printf("bro-labapp: serving %s (postgres %s, redis %s)", *listen, redact(*pgURL), *redisAddr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("bro-labapp: %v", err)
	}
	app.close()
}

type app struct {
	pgURL, redisAddr, host string

	mu sync.Mutex // guards pg
	pg *pgx.Conn
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	hits, err := redisIncr(ctx, a.redisAddr, "lab:hits")
	if err != nil {
		http.Error(w, "lab: redis: "+err.Error(), http.StatusBadGateway)
		return
	}
	version, now, err := a.postgres(ctx)
	if err != nil {
		http.Error(w, "lab: postgres: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "lab: postgres %s at %s, redis hits %d, web %s\n",
		version, now.UTC().Format(time.RFC3339), hits, a.host)
}

// postgres asks the server for its version and the time, on the kept
// connection; a failed query drops it so that the next request reconnects.
func (a *app) postgres(ctx context.Context) (version string, now time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pg == nil || a.pg.IsClosed() {
		err = retry(ctx, func() (err error) {
			a.pg, err = pgx.Connect(ctx, a.pgURL)
			return err
		})
		if err != nil {
			a.pg = nil
			return "", time.Time{}, fmt.Errorf("connect: %w", err)
		}
	}
	err = a.pg.QueryRow(ctx, "SELECT current_setting('server_version'), now()").Scan(&version, &now)
	if err != nil {
		_ = a.pg.Close(context.Background())
		a.pg = nil
		return "", time.Time{}, fmt.Errorf("query: %w", err)
	}
	// "15.14 (Debian 15.14-0+deb12u1)": the number is enough
	version, _, _ = strings.Cut(version, " ")
	return version, now, nil
}

func (a *app) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pg != nil {
		_ = a.pg.Close(context.Background())
	}
}

// redisIncr sends INCR key as a RESP array and reads the integer reply
// (":N\r\n"); an error reply ("-ERR …") is returned as an error.
func redisIncr(ctx context.Context, addr, key string) (int64, error) {
	var c net.Conn
	err := retry(ctx, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
		return 0, fmt.Errorf("send INCR to %s: %w", addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read reply of %s: %w", addr, err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, ":"):
		n, err := strconv.ParseInt(line[1:], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reply of %s %q: %w", addr, line, err)
		}
		return n, nil
	case strings.HasPrefix(line, "-"):
		return 0, fmt.Errorf("%s: %s", addr, line[1:])
	default:
		return 0, fmt.Errorf("reply of %s %q: not an integer", addr, line)
	}
}

// retry calls fn until it succeeds or ctx ends, 50 ms apart, and returns
// its last error. The cache's unit is active once its container runs, a
// moment before Redis listens: the first request after a cold start may
// come in between.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// redact drops the password from a URL for the log.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	colon := strings.Index(u, "://")
	if at < 0 || colon < 0 {
		return u
	}
	user := u[colon+3 : at]
	if name, _, ok := strings.Cut(user, ":"); ok {
		return u[:colon+3] + name + ":xxx" + u[at:]
	}
	return u
}
