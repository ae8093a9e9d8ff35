// Command brobench is the benchmark harness of issue 12 (docs/bench.md):
// it sets up the backends, starts every candidate in turn, drives
// test/broload (the one load tool, which also serves the echo backend) and
// pgbench through them, reads each proxy's descriptors, memory and CPU from
// /proc, and prints the results and the targets as markdown.
//
//	brobench run --proxy PATH --broload PATH ...   the whole comparison (as root)
//	brobench coldstart --proxy PATH ...            PostgreSQL cold start on the rig (as root)
//	brobench probe ADDR                            one PostgreSQL SSLRequest probe
//
// run measures two paths in one run, interleaved (every scenario, every
// repetition: each candidate in turn, each with a fresh proxy):
//   - netns: a bare network namespace of root's (ip netns) running
//     broload serve: direct (the client inside the namespace: one loopback
//     hop, the physical limit), systemd-socket-proxyd under ip netns exec,
//     bro-proxy --netns, each behind systemd-socket-activate;
//   - rootless: Network=none containers of the rig user (broload serve
//     bind-mounted into busybox, and PostgreSQL): direct (nsenter), the
//     lab's systemd-socket-proxyd under podman unshare nsenter, bro-proxy
//     --pid, and pasta attached to the container's namespace as Podman 5
//     attaches it.
//
// Everything it starts it kills by pid, and it removes the namespace and
// the containers (named bench-*) on exit. A benchmark, not a test: it exits
// 0 whatever the targets say.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: brobench run|coldstart|probe ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "coldstart":
		err = coldstart(os.Args[2:])
	case "probe":
		err = probeCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q: want run, coldstart or probe (the loads and the echo server are test/broload's)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "brobench: %v\n", err)
		os.Exit(1)
	}
}

// hostInfo prints the machine's load and kernel (coldstart's header).
func hostInfo() {
	fmt.Printf("machine: %d CPUs, kernel %s, load average %s\n", numCPU(), firstLine("uname", "-r"), loadavg())
}
