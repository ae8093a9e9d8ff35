//go:build pprof

package main

// Opt-in profiling for the benchmarks (test/bench, docs/bench.md). Built
// only with -tags pprof, so a normal bro-proxy neither links net/http nor
// pays for it in memory. With BRO_PROXY_PPROF=127.0.0.1:6060 in the
// environment, net/http/pprof serves on that address in the host namespace:
//
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=5
import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BRO_PROXY_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
