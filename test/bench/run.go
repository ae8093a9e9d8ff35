package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// candidate is one way from the client to the backend.
type candidate struct {
	name string
	exe  string // base-name prefix of the process doing the work
	// launch returns the command that listens on 127.0.0.1:port and
	// forwards to target in be's namespace, allowing maxConns at once; nil
	// for direct (the client runs inside the namespace).
	launch func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd
}

var (
	direct = candidate{name: "direct"}

	// socket-proxyd's default --connections-max is 256: more only where a
	// scenario holds more (issue 12: 4096 where it is held to more than 256).
	socketProxydArgs = func(b *bench, target string, maxConns int) []string {
		a := []string{b.socketProxyd}
		if maxConns > 256 {
			a = append(a, "--connections-max="+strconv.Itoa(maxConns))
		}
		return append(a, target)
	}
	// bro-proxy's default is 4096.
	broArgs = func(b *bench, ns []string, target string, maxConns int) []string {
		a := append([]string{b.proxy}, ns...)
		if maxConns > 4096 {
			a = append(a, "--connections-max", strconv.Itoa(maxConns))
		}
		return append(a, target)
	}

	netnsCandidates = []candidate{
		direct,
		{name: "socket-proxyd", exe: "systemd-socket-proxyd",
			launch: func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd {
				// ip netns exec execs in place: fd 3 and LISTEN_PID survive
				return exec.Command("systemd-socket-activate", append([]string{"-l", loopback(port),
					"ip", "netns", "exec", b.netns}, socketProxydArgs(b, target, maxConns)...)...)
			}},
		{name: "bro-proxy", exe: "bro-proxy",
			launch: func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd {
				return exec.Command("systemd-socket-activate", append([]string{"-l", loopback(port)},
					broArgs(b, []string{"--netns", be.netns}, target, maxConns)...)...)
			}},
	}

	rootlessCandidates = []candidate{
		direct,
		{name: "socket-proxyd", exe: "systemd-socket-proxyd",
			launch: func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd {
				// The lab's way (issue 12): podman unshare runs its command as a
				// child, so the inner sh sets LISTEN_PID to the pid that execs
				// nsenter, which execs socket-proxyd. systemd-socket-activate
				// passes only LISTEN_*: env adds what podman needs.
				inner := "LISTEN_PID=$$ exec nsenter -t " + strconv.Itoa(be.pid) + " -n " +
					strings.Join(socketProxydArgs(b, target, maxConns), " ")
				return be.owner.command(append(append([]string{"systemd-socket-activate", "-l", loopback(port), "env"},
					be.owner.env()...), "podman", "unshare", "sh", "-c", inner)...)
			}},
		{name: "bro-proxy", exe: "bro-proxy",
			launch: func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd {
				return be.owner.command(append(append([]string{"systemd-socket-activate", "-l", loopback(port), "env"},
					be.owner.env()...), broArgs(b, []string{"--pid", strconv.Itoa(be.pid)}, target, maxConns)...)...)
			}},
		{name: "pasta", exe: "passt", // /usr/bin/pasta is a link to passt (or passt.avx2)
			launch: func(b *bench, be backend, port int, target string, maxConns int) *exec.Cmd {
				// Podman 5's arguments (containers/common libnetwork/pasta,
				// createPastaArgs) for -p 127.0.0.1:PORT:TPORT, attached by hand to
				// the Network=none container, as its user. Podman 5 runs pasta
				// inside its rootless user namespace with --netns naming a
				// bind-mounted namespace file; pasta started as root there drops
				// to "nobody", who cannot open /proc/PID/ns/net, and Podman 4.3
				// makes no such file for Network=none. So the PID form: pasta
				// joins the container's user and network namespaces itself.
				// --foreground keeps it below us, to be measured and stopped.
				_, tport, _ := net.SplitHostPort(target)
				fwd := fmt.Sprintf("127.0.0.1/%d-%d:%s-%s", port, port, tport, tport)
				return be.owner.command(b.pasta, "--config-net", "-t", fwd,
					"--dns-forward", "169.254.0.1", "-u", "none", "-T", "none", "-U", "none",
					"--no-map-gw", "--quiet", "--foreground", strconv.Itoa(be.pid))
			}},
	}
)

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// scenario is one measurement.
type scenario struct {
	name     string
	rootless bool     // only on the rootless path (pgbench, the pipe budget)
	target   string   // echoAddr, afterEOFAddr or pgAddr
	hold     int      // connections held at once (broload hold -n)
	load     []string // broload mode and flags; ADDR goes after the mode
	pgbench  []string // pgbench flags, instead of load
	seq      bool     // bulk1 fresh, with 1,000 held, after: one proxy
}

func (b *bench) scenarios() []scenario {
	d := b.dur.String()
	bulk := strconv.FormatInt(b.bulkBytes, 10)
	pgT := strconv.Itoa(int(b.pgTime.Seconds()))
	return []scenario{
		// --timeout: a stream that stalls (pasta's do, now and then, a few KiB
		// short of the end) fails in 30 s instead of holding up the run
		{name: "bulk1", target: echoAddr, load: []string{"bulk", "--streams", "1", "--bytes", bulk, "--timeout", "30s"}},
		{name: "bulk8", target: echoAddr, load: []string{"bulk", "--streams", "8", "--bytes", strconv.FormatInt(b.bulkBytes/8, 10), "--timeout", "30s"}},
		{name: "rr1", target: echoAddr, load: []string{"rr", "--conns", "1", "--duration", d}},
		{name: "rr32", target: echoAddr, load: []string{"rr", "--conns", "32", "--duration", d}},
		{name: "conn16", target: echoAddr, load: []string{"conn", "--workers", "16", "--duration", d}},
		{name: "idle1000", target: echoAddr, hold: 1000},
		{name: "halfclose", target: afterEOFAddr, load: []string{"halfclose", "-n", "20", "--json"}},
		{name: "pgbench-S-c8", rootless: true, target: pgAddr, pgbench: []string{"-n", "-S", "-c", "8", "-j", "2", "-T", pgT}},
		{name: "pgbench-S-C-c4", rootless: true, target: pgAddr, pgbench: []string{"-n", "-S", "-C", "-c", "4", "-j", "2", "-T", pgT}},
		{name: "bulk1-idle", rootless: true, target: echoAddr, seq: true},
	}
}

// sample is one (repetition, path, scenario, candidate) measurement. The
// proxy's numbers are of its process tree (bro-proxy and its namespace
// helper; socket-proxyd and pasta alone, not the podman unshare above them).
type sample struct {
	Rep       int     `json:"rep"`
	Path      string  `json:"path"`
	Scenario  string  `json:"scenario"`
	Candidate string  `json:"candidate"`
	Result    result  `json:"result"`
	Err       string  `json:"error,omitempty"`
	Base      procMem `json:"base"`           // after the warm-up
	Held      procMem `json:"held,omitempty"` // hold: all connections held, 1.5 s idle
	After     procMem `json:"after"`          // after the load (hold: once back, or the wait ran out)
	AfterMS   int64   `json:"after_ms,omitempty"`
	CPUTicks  int64   `json:"cpu_ticks"` // during the load
	ProxyPID  int     `json:"proxy_pid,omitempty"`
}

// result is broload's JSON line (test/broload/bench.go); pgbench's output
// is put in the same shape: Ops transactions, Rate tps, P50us its latency
// average.
type result struct {
	Scenario string  `json:"scenario"`
	Seconds  float64 `json:"seconds"`
	Bytes    int64   `json:"bytes,omitempty"`
	MBps     float64 `json:"mbps,omitempty"`
	Ops      int64   `json:"ops,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	P50us    float64 `json:"p50_us,omitempty"`
	P99us    float64 `json:"p99_us,omitempty"`
	P999us   float64 `json:"p999_us,omitempty"`
	Failures int64   `json:"failures"`
	FirstErr string  `json:"first_error,omitempty"`
	Held     int     `json:"held,omitempty"`
	OK       int     `json:"ok,omitempty"`
	N        int     `json:"n,omitempty"`
}

type bench struct {
	proxy, broload, socketProxyd, pasta, pgbench string
	image, pgImage                               string
	netns                                        string
	owner                                        *account
	withPG                                       bool
	paths, cands, only                           map[string]bool
	dur, pgTime                                  time.Duration
	bulkBytes                                    int64
	heldN                                        int
	logDir, note                                 string
	cleanups                                     []func()
	samples                                      []sample
	loads                                        []string // the machine's load, as it went
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	b := &bench{}
	fs.StringVar(&b.proxy, "proxy", "bin/bro-proxy", "bro-proxy binary")
	fs.StringVar(&b.broload, "broload", "bin/broload", "broload binary (static: it also runs in the busybox container)")
	fs.StringVar(&b.socketProxyd, "socket-proxyd", "/lib/systemd/systemd-socket-proxyd", "systemd-socket-proxyd binary")
	fs.StringVar(&b.pasta, "pasta", "/usr/bin/pasta", "pasta binary (Debian: passt)")
	fs.StringVar(&b.pgbench, "pgbench", "/usr/bin/pgbench", "pgbench binary (Debian: postgresql-client-15)")
	fs.StringVar(&b.netns, "netns", fmt.Sprintf("brobench-%d", os.Getpid()), "network namespace to create (and delete)")
	userName := fs.String("user", "lingeruser", "the rootless path's user")
	fs.StringVar(&b.image, "image", "localhost/bbox:latest", "the echo container's image (the user's)")
	fs.StringVar(&b.pgImage, "pg-image", "localhost/postgres:15", "PostgreSQL image (the user's)")
	reps := fs.Int("reps", 5, "repetitions (medians over these), as many as --budget allows")
	fs.DurationVar(&b.dur, "duration", 2*time.Second, "length of each rr and conn measurement")
	fs.DurationVar(&b.pgTime, "pgbench-time", 4*time.Second, "length of each pgbench run (whole seconds)")
	fs.Int64Var(&b.bulkBytes, "bulk-bytes", 1<<30, "bulk1's bytes each way; bulk8 is 8 streams of an eighth")
	fs.IntVar(&b.heldN, "held", 0, "connections to hold at once (0: (hard NOFILE - 100) / 2, rounded down to hundreds)")
	budget := fs.Duration("budget", 16*time.Minute, "start no repetition that would end after this (run.sh's limit is 20 min)")
	paths := fs.String("paths", "netns,rootless", "paths to measure")
	cands := fs.String("candidates", "direct,socket-proxyd,bro-proxy,pasta", "candidates to measure")
	only := fs.String("only", "", "comma-separated scenarios (default all; held is the held-connections one)")
	jsonOut := fs.String("json", "", "write every sample to this file too")
	fs.StringVar(&b.note, "note", "", "a line for the report's header (run.sh: the tree's git describe)")
	fs.StringVar(&b.logDir, "log-dir", "", "where proxy logs go (default a temp dir, removed unless a run failed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run: needs root (ip netns add, nsenter, the user's processes)")
	}
	set := func(s string) map[string]bool {
		if s == "" {
			return nil
		}
		m := map[string]bool{}
		for _, f := range strings.Split(s, ",") {
			m[strings.TrimSpace(f)] = true
		}
		return m
	}
	b.paths, b.cands, b.only = set(*paths), set(*cands), set(*only)
	b.withPG = b.paths["rootless"] && b.wants("pgbench-S-c8", "pgbench-S-C-c4")
	var err error
	for _, p := range []*string{&b.proxy, &b.broload} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if b.heldN == 0 {
		_, hard := noFile()
		b.heldN = int((hard-100)/2) / 100 * 100
	}
	if b.paths["rootless"] {
		if b.owner, err = lookupAccount(*userName); err != nil {
			return err
		}
	}
	if err := b.preflight(); err != nil {
		return err
	}
	keepLogs := b.logDir != ""
	if keepLogs {
		err = os.MkdirAll(b.logDir, 0o755)
	} else {
		b.logDir, err = os.MkdirTemp("", "brobench-")
	}
	if err != nil {
		return err
	}
	os.Chmod(b.logDir, 0o755)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	defer func() {
		killAll()
		for i := len(b.cleanups) - 1; i >= 0; i-- {
			b.cleanups[i]()
		}
	}()

	t0 := time.Now()
	b.noteLoad("start")
	type target struct {
		echo, pg backend
		cands    []candidate
	}
	var targets []target
	if b.paths["netns"] {
		be, err := b.setupNetns()
		if err != nil {
			return err
		}
		targets = append(targets, target{be, backend{}, b.filter(netnsCandidates)})
	}
	if b.paths["rootless"] {
		echo, pg, err := b.setupRootless(ctx)
		if err != nil {
			return err
		}
		targets = append(targets, target{echo, pg, b.filter(rootlessCandidates)})
	}
	fmt.Fprintf(os.Stderr, "brobench: set up in %s\n", time.Since(t0).Round(time.Second))

	failed := false
	measure := func(s []sample) {
		for _, x := range s {
			if x.Err != "" {
				failed = true
				fmt.Fprintf(os.Stderr, "brobench: %s %s %s: %s\n", x.Path, x.Scenario, x.Candidate, x.Err)
			}
			b.samples = append(b.samples, x)
		}
	}

	// Held connections: once per candidate, first (the slowest, and the
	// one the issue is about).
	if b.wants("held") {
		fmt.Fprintf(os.Stderr, "brobench: held: %d connections at once\n", b.heldN)
		for _, t := range targets {
			for _, c := range t.cands {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sc := scenario{name: "held", target: echoAddr, hold: b.heldN}
				measure([]sample{b.measure(ctx, 0, t.echo, sc, c)})
			}
		}
	}
	tReps := time.Now()
	done := 0
	for rep := 1; rep <= *reps; rep++ {
		if rep > 1 {
			per := time.Since(tReps) / time.Duration(rep-1)
			if time.Since(t0)+per > *budget {
				fmt.Fprintf(os.Stderr, "brobench: budget %s: stopping after %d repetitions\n", *budget, rep-1)
				break
			}
		}
		b.noteLoad(fmt.Sprintf("repetition %d", rep))
		fmt.Fprintf(os.Stderr, "brobench: repetition %d/%d (%s elapsed, load %s)\n", rep, *reps, time.Since(t0).Round(time.Second), loadavg())
		for _, sc := range b.scenarios() {
			if !b.wants(sc.name) {
				continue
			}
			for _, t := range targets {
				if sc.rootless && t.echo.path != "rootless" {
					continue
				}
				be := t.echo
				if sc.target == pgAddr {
					be = t.pg
				}
				for _, c := range t.cands {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if sc.seq {
						if c.launch != nil {
							measure(b.measureSeq(ctx, rep, be, sc, c))
						}
						continue
					}
					measure([]sample{b.measure(ctx, rep, be, sc, c)})
				}
			}
		}
		done = rep
	}
	b.noteLoad("end")
	if *jsonOut != "" {
		if err := writeSamples(*jsonOut, b.samples); err != nil {
			return err
		}
	}
	b.report(os.Stdout, done, time.Since(t0))
	if failed || keepLogs {
		fmt.Fprintf(os.Stderr, "brobench: proxy logs in %s\n", b.logDir)
	} else {
		os.RemoveAll(b.logDir)
	}
	return nil
}

func (b *bench) wants(names ...string) bool {
	if b.only == nil {
		return true
	}
	for _, n := range names {
		if b.only[n] {
			return true
		}
	}
	return false
}

func (b *bench) filter(cs []candidate) []candidate {
	var out []candidate
	for _, c := range cs {
		if b.cands == nil || b.cands[c.name] {
			out = append(out, c)
		}
	}
	return out
}

// running is a started proxy: the command started, and the process doing
// the work (found after the warm-up).
type running struct {
	cmd *exec.Cmd
	pid int
	log *os.File
}

func (r *running) stop() {
	if r == nil {
		return
	}
	stop(r.cmd, 5*time.Second)
	r.log.Close()
}

// startProxy starts c on a free port in front of target in be's namespace
// and makes one checked exchange through it (systemd-socket-activate execs
// the proxy at the first connection; pasta binds when it is ready).
func (b *bench) startProxy(be backend, c candidate, target, tag string, maxConns int) (*running, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := loopback(port)
	cmd := c.launch(b, be, port, target, maxConns)
	logf, err := os.Create(filepath.Join(b.logDir, tag+".log"))
	if err != nil {
		return nil, "", err
	}
	fmt.Fprintf(logf, "# %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := start(cmd); err != nil {
		logf.Close()
		return nil, "", err
	}
	r := &running{cmd: cmd, log: logf}
	if err := warm(addr, target); err != nil {
		r.stop()
		return nil, "", fmt.Errorf("warm-up through %s: %w (log %s)", addr, err, logf.Name())
	}
	if r.pid, err = findProc(cmd.Process.Pid, c.exe, 5*time.Second); err != nil {
		r.stop()
		return nil, "", err
	}
	return r, addr, nil
}

// measure runs one scenario through one candidate, with a fresh proxy.
func (b *bench) measure(ctx context.Context, rep int, be backend, sc scenario, c candidate) sample {
	s := sample{Rep: rep, Path: be.path, Scenario: sc.name, Candidate: c.name}
	fail := func(err error) sample { s.Err = err.Error(); return s }
	addr := sc.target
	var proxy *running
	if c.launch != nil {
		maxConns := 0
		if sc.hold > 0 {
			maxConns = max(4096, sc.hold+100)
		}
		var err error
		proxy, addr, err = b.startProxy(be, c, sc.target, fmt.Sprintf("%s-%s-%s-%d", be.path, sc.name, c.name, rep), maxConns)
		if err != nil {
			return fail(err)
		}
		defer proxy.stop()
		s.ProxyPID = proxy.pid
		if sc.hold > 0 {
			// the baseline of an idle proxy, like the held reading: past
			// the settle time after the checked exchange (bro-proxy refills
			// the sockets it keeps ready 50 ms after the last one taken)
			time.Sleep(1500 * time.Millisecond)
		}
		s.Base, _ = readTree(proxy.pid)
	}
	prefix := []string(nil)
	if c.launch == nil {
		prefix = be.enter()
	}
	var err error
	switch {
	case sc.hold > 0:
		err = b.hold(ctx, &s, prefix, addr, sc.hold, proxy)
	case sc.pgbench != nil:
		port := strings.TrimPrefix(addr, "127.0.0.1:")
		argv := append(append(append(prefix, b.pgbench), sc.pgbench...), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "postgres")
		s.Result, err = runPgbench(ctx, argv, b.pgTime+time.Minute)
	default:
		argv := append(append(prefix, b.broload, sc.load[0], addr), sc.load[1:]...)
		s.Result, err = runLoad(ctx, argv, 3*time.Minute)
	}
	if err != nil {
		return fail(err)
	}
	if proxy != nil && sc.hold == 0 {
		s.After, _ = readTree(proxy.pid)
		s.CPUTicks = s.After.CPUTicks - s.Base.CPUTicks
	}
	if s.Result.Failures > 0 && sc.hold == 0 && sc.name != "halfclose" {
		s.Err = fmt.Sprintf("%d failures, the first: %s", s.Result.Failures, s.Result.FirstErr)
	}
	return s
}

// hold holds n connections through addr (broload hold), reads the proxy
// while they are held and idle, releases them, and waits for the proxy's
// descriptors (and, for the big hold, its RSS) to come back.
func (b *bench) hold(ctx context.Context, s *sample, prefix []string, addr string, n int, proxy *running) error {
	argv := append(prefix, b.broload, "hold", addr, "-n", strconv.Itoa(n), "--json", "--timeout", "5s", "--hold", "5m")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := start(cmd); err != nil {
		return err
	}
	defer forget(cmd)
	kill := time.AfterFunc(4*time.Minute, func() { cmd.Process.Kill() })
	defer kill.Stop()
	line, rerr := bufio.NewReader(stdout).ReadString('\n')
	if rerr == nil {
		rerr = json.Unmarshal([]byte(line), &s.Result)
	}
	if rerr == nil && proxy != nil {
		// idle means idle: past bro-proxy's settle time (1 s without churn)
		time.Sleep(1500 * time.Millisecond)
		s.Held, _ = readTree(proxy.pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	if rerr != nil || werr != nil {
		return fmt.Errorf("%s: %v %v: %s", strings.Join(argv, " "), rerr, werr, strings.TrimSpace(stderr.String()))
	}
	if proxy == nil {
		return nil
	}
	// back to baseline: the descriptors at once; the memory too after the
	// big hold, where it is a target (RSS within 25 % of the baseline)
	t := time.Now()
	wait := 5 * time.Second
	if n > 1000 {
		wait = 10 * time.Second
	}
	for {
		s.After, _ = readTree(proxy.pid)
		back := s.After.FDs <= s.Base.FDs && (n <= 1000 || float64(s.After.RSSKiB) <= 1.25*float64(s.Base.RSSKiB))
		if back || time.Since(t) > wait {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.AfterMS = time.Since(t).Milliseconds()
	s.CPUTicks = s.After.CPUTicks - s.Base.CPUTicks
	return nil
}

// measureSeq: through one proxy on the rootless path, bulk1 fresh, bulk1
// while 1,000 idle connections are held, and bulk1 right after they were
// closed. Held idle connections may spend the user's pipe budget
// (fs.pipe-user-pages-soft): then every new pipe of the user is one page.
func (b *bench) measureSeq(ctx context.Context, rep int, be backend, sc scenario, c candidate) []sample {
	mk := func(name string) sample {
		return sample{Rep: rep, Path: be.path, Scenario: name, Candidate: c.name}
	}
	names := []string{"bulk1-fresh", "bulk1-held1000", "bulk1-after1000"}
	fail := func(err error) []sample {
		s := mk(names[0])
		s.Err = err.Error()
		return []sample{s}
	}
	proxy, addr, err := b.startProxy(be, c, sc.target, fmt.Sprintf("%s-%s-%s-%d", be.path, sc.name, c.name, rep), 4096)
	if err != nil {
		return fail(err)
	}
	defer proxy.stop()
	bulk := func(name string) sample {
		s := mk(name)
		s.ProxyPID = proxy.pid
		s.Base, _ = readTree(proxy.pid)
		var err error
		s.Result, err = runLoad(ctx, []string{b.broload, "bulk", addr, "--streams", "1", "--bytes", strconv.FormatInt(b.bulkBytes, 10), "--timeout", "30s"}, 3*time.Minute)
		if err == nil && s.Result.Failures > 0 {
			err = fmt.Errorf("%d failures, the first: %s", s.Result.Failures, s.Result.FirstErr)
		}
		if err != nil {
			s.Err = err.Error()
		}
		s.After, _ = readTree(proxy.pid)
		s.CPUTicks = s.After.CPUTicks - s.Base.CPUTicks
		return s
	}
	out := []sample{bulk(names[0])}
	argv := []string{b.broload, "hold", addr, "-n", "1000", "--json", "--timeout", "5s", "--hold", "5m"}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return append(out, fail(err)...)
	}
	if err := start(cmd); err != nil {
		return append(out, fail(err)...)
	}
	defer forget(cmd)
	var held result
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &held)
	}
	if err == nil && held.Held != 1000 {
		err = fmt.Errorf("held %d of 1000: %s", held.Held, held.FirstErr)
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		s := mk(names[1])
		s.Err = fmt.Sprintf("hold 1000: %v", err)
		return append(out, s)
	}
	out = append(out, bulk(names[1]))
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return append(out, bulk(names[2]))
}

// runLoad runs a broload load and decodes its JSON line.
func runLoad(ctx context.Context, argv []string, limit time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r result
	if err == nil {
		err = json.Unmarshal(out, &r)
	}
	if err != nil {
		return r, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return r, nil
}

var (
	pgTxRe   = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	pgFailRe = regexp.MustCompile(`number of failed transactions: (\d+)`)
	pgTPSRe  = regexp.MustCompile(`tps = ([0-9.]+)`)
	pgLatRe  = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

// runPgbench runs pgbench and reads its summary.
func runPgbench(ctx context.Context, argv []string, limit time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	r := result{Scenario: "pgbench"}
	m := pgTPSRe.FindSubmatch(out)
	if err != nil || m == nil {
		return r, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	r.Rate, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := pgTxRe.FindSubmatch(out); m != nil {
		r.Ops, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := pgFailRe.FindSubmatch(out); m != nil {
		r.Failures, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := pgLatRe.FindSubmatch(out); m != nil {
		ms, _ := strconv.ParseFloat(string(m[1]), 64)
		r.P50us = ms * 1000
	}
	return r, nil
}

// warm connects (retrying while nothing listens yet) and checks one
// exchange: an echo, or PostgreSQL's answer to an SSLRequest.
func warm(addr, target string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			defer c.Close()
			c.SetDeadline(deadline)
			switch target {
			case afterEOFAddr:
				// a connection is enough to start the proxy: whether the
				// reply after a half-close arrives is what halfclose measures
				return nil
			case pgAddr:
				_, err := probeConn(c, time.Now(), time.Until(deadline))
				return err
			}
			msg := []byte("warm-up\n")
			if _, err := c.Write(msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			for n := 0; n < len(got); {
				k, err := c.Read(got[n:])
				n += k
				if err != nil {
					return fmt.Errorf("echo: %w", err)
				}
			}
			if string(got) != string(msg) {
				return fmt.Errorf("echo %q; want %q", got, msg)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeSamples(path string, samples []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, s := range samples {
		enc.Encode(s)
	}
	return f.Close()
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (b *bench) noteLoad(when string) {
	b.loads = append(b.loads, fmt.Sprintf("%s %s: %s", time.Now().UTC().Format("15:04:05"), when, loadavg()))
}
