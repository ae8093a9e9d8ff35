// Command brobench measures bro-proxy against systemd-socket-proxyd and a
// direct connection (issue 6). It is the load generator, the echo backend
// and the orchestrator in one binary:
//
//	brobench serve  --listen ADDR --after-eof-listen ADDR   the backend
//	brobench load   --scenario S --addr ADDR ...             one measurement, one JSON line
//	brobench run    --proxy PATH ...                         the whole comparison (as root)
//	brobench coldstart --proxy PATH ...                      PostgreSQL cold start on the rig (as root)
//	brobench probe  ADDR                                     one SSLRequest probe
//
// run creates a network namespace, starts the backend in it and, for every
// repetition and scenario, each candidate in turn (A B C D A B C D): direct
// (the client inside the namespace, one loopback hop: the physical limit),
// systemd-socket-proxyd under ip netns exec, bro-proxy --netns and
// bro-proxy --pid, each behind systemd-socket-activate in the host
// namespace. Everything it starts it kills by pid and it removes the
// namespace on exit. A benchmark, not a test: nothing here asserts timings.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: brobench serve|load|run|coldstart|probe ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "coldstart":
		err = coldstart(os.Args[2:])
	case "probe":
		err = probeCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q: want serve, load, run, coldstart or probe", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "brobench: %v\n", err)
		os.Exit(1)
	}
}
