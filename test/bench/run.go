package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	echoPort     = "127.0.0.1:7000"
	afterEOFPort = "127.0.0.1:7001"
)

// candidate is one way from the client to the backend.
type candidate struct {
	name string
	// argv builds the proxy command behind systemd-socket-activate, for a
	// target inside the namespace; nil for direct.
	argv func(b *bench, target string) []string
}

var candidates = []candidate{
	{name: "direct"},
	{name: "socket-proxyd", argv: func(b *bench, t string) []string {
		return []string{"ip", "netns", "exec", b.netns, b.socketProxyd, t}
	}},
	{name: "bro --netns", argv: func(b *bench, t string) []string {
		return append([]string{b.proxy, "--netns", "/run/netns/" + b.netns}, append(b.proxyArgs, t)...)
	}},
	{name: "bro --pid", argv: func(b *bench, t string) []string {
		return append([]string{b.proxy, "--pid", strconv.Itoa(b.backendPID)}, append(b.proxyArgs, t)...)
	}},
}

// scenario is one measurement; load are brobench load's flags.
type scenario struct {
	name   string
	target string
	load   []string
}

func scenarios(dur time.Duration, bulk1 int64) []scenario {
	d := dur.String()
	return []scenario{
		{"bulk1", echoPort, []string{"--scenario", "bulk", "--streams", "1", "--bytes", strconv.FormatInt(bulk1, 10)}},
		{"bulk8", echoPort, []string{"--scenario", "bulk", "--streams", "8", "--bytes", strconv.FormatInt(bulk1/16, 10)}},
		{"rr1", echoPort, []string{"--scenario", "rr", "--conns", "1", "--duration", d}},
		{"rr32", echoPort, []string{"--scenario", "rr", "--conns", "32", "--duration", d}},
		{"conn16", echoPort, []string{"--scenario", "conn", "--workers", "16", "--duration", d}},
		{"conn1000", echoPort, []string{"--scenario", "conn", "--workers", "1000", "--duration", d}},
		{"idle1000", echoPort, []string{"--scenario", "idle", "--conns", "1000"}},
		{"halfclose", afterEOFPort, []string{"--scenario", "halfclose", "--n", "20"}},
	}
}

// sample is one (repetition, scenario, candidate) measurement.
type sample struct {
	Rep       int     `json:"rep"`
	Scenario  string  `json:"scenario"`
	Candidate string  `json:"candidate"`
	Result    result  `json:"result"`
	Err       string  `json:"error,omitempty"`
	BaseRSS   int64   `json:"base_rss_kib,omitempty"`
	HeldRSS   int64   `json:"held_rss_kib,omitempty"`
	PeakRSS   int64   `json:"peak_rss_kib,omitempty"`
	BaseFDs   int     `json:"base_fds,omitempty"`
	HeldFDs   int     `json:"held_fds,omitempty"`
	AfterFDs  int     `json:"after_fds,omitempty"`
	AfterMS   int64   `json:"after_ms,omitempty"` // until fds were back to baseline
	KiBPer    float64 `json:"kib_per_conn,omitempty"`
	CPUSecs   float64 `json:"proxy_cpu_s,omitempty"`
	ProxyPID  int     `json:"proxy_pid,omitempty"`
	ProxyExec string  `json:"proxy_exe,omitempty"`
}

type bench struct {
	self, proxy, socketProxyd string
	proxyArgs                 []string
	netns                     string
	backendPID                int
	logDir                    string
	only                      map[string]bool
	profileDir                string
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	b := &bench{}
	fs.StringVar(&b.proxy, "proxy", "bin/bro-proxy", "bro-proxy binary")
	fs.StringVar(&b.socketProxyd, "socket-proxyd", "/lib/systemd/systemd-socket-proxyd", "systemd-socket-proxyd binary")
	fs.StringVar(&b.netns, "netns", fmt.Sprintf("brobench-%d", os.Getpid()), "network namespace to create (and delete)")
	reps := fs.Int("reps", 5, "repetitions (medians over these)")
	dur := fs.Duration("duration", 2*time.Second, "length of each rr and conn measurement")
	bulk := fs.Int64("bulk-bytes", 2<<30, "bulk1 size; bulk8 is 8 streams of a 16th of it")
	budget := fs.Duration("budget", 9*time.Minute, "stop starting repetitions after this")
	only := fs.String("only", "", "comma-separated scenarios to run (default all)")
	jsonOut := fs.String("json", "", "write every sample to this file too")
	fs.StringVar(&b.logDir, "log-dir", "", "where proxy logs go (default a temp dir, removed unless a run failed)")
	fs.StringVar(&b.profileDir, "profile-dir", "", "pass --cpuprofile DIR/SCENARIO-CANDIDATE-REP.pprof to bro-proxy")
	extra := fs.String("proxy-args", "", "extra bro-proxy arguments, space-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run: needs root (ip netns add)")
	}
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.proxy, err = filepath.Abs(b.proxy); err != nil {
		return err
	}
	for _, p := range []string{b.proxy, b.socketProxyd} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if *extra != "" {
		b.proxyArgs = strings.Fields(*extra)
	}
	if *only != "" {
		b.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			b.only[s] = true
		}
	}
	keepLogs := b.logDir != ""
	if keepLogs {
		if err := os.MkdirAll(b.logDir, 0o755); err != nil {
			return err
		}
	} else {
		if b.logDir, err = os.MkdirTemp("", "brobench-"); err != nil {
			return err
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	defer killAll()
	if err := b.setupNetns(); err != nil {
		return err
	}
	defer b.deleteNetns()
	if err := b.startBackend(ctx); err != nil {
		return err
	}

	hostInfo()
	t0 := time.Now()
	var samples []sample
	failed := false
	for rep := 1; rep <= *reps; rep++ {
		if rep > 1 {
			perRep := time.Since(t0) / time.Duration(rep-1)
			if time.Since(t0)+perRep > *budget {
				fmt.Fprintf(os.Stderr, "brobench: budget %s: stopping after %d repetitions\n", *budget, rep-1)
				break
			}
		}
		fmt.Fprintf(os.Stderr, "brobench: repetition %d/%d (%s elapsed)\n", rep, *reps, time.Since(t0).Round(time.Second))
		for _, sc := range scenarios(*dur, *bulk) {
			if b.only != nil && !b.only[sc.name] {
				continue
			}
			for _, c := range candidates {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s := b.measure(ctx, rep, sc, c)
				if s.Err != "" {
					failed = true
					fmt.Fprintf(os.Stderr, "brobench: %s %s: %s\n", sc.name, c.name, s.Err)
				}
				samples = append(samples, s)
			}
		}
	}
	if *jsonOut != "" {
		if err := writeSamples(*jsonOut, samples); err != nil {
			return err
		}
	}
	fmt.Printf("\n%d repetitions in %s\n\n", countReps(samples), time.Since(t0).Round(time.Second))
	printTable(os.Stdout, samples)
	if failed || keepLogs {
		fmt.Fprintf(os.Stderr, "brobench: proxy logs in %s\n", b.logDir)
	} else {
		os.RemoveAll(b.logDir)
	}
	return nil
}

func hostInfo() {
	if out, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("load: %s", out)
	}
	k, _ := exec.Command("uname", "-r").Output()
	fmt.Printf("kernel %s", k)
}

func (b *bench) setupNetns() error {
	if out, err := exec.Command("ip", "netns", "add", b.netns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", b.netns, err, out)
	}
	if out, err := exec.Command("ip", "-n", b.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		b.deleteNetns()
		return fmt.Errorf("ip -n %s link set lo up: %v: %s", b.netns, err, out)
	}
	return nil
}

func (b *bench) deleteNetns() {
	exec.Command("ip", "netns", "del", b.netns).Run()
}

// startBackend runs brobench serve inside the namespace; ip netns exec
// execs it, so the pid we started is the server (what --pid is given).
func (b *bench) startBackend(ctx context.Context) error {
	cmd := exec.Command("ip", "netns", "exec", b.netns, b.self, "serve",
		"--listen", echoPort, "--after-eof-listen", afterEOFPort)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := start(cmd); err != nil {
		return err
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving") {
		return fmt.Errorf("backend did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, stderr)
	b.backendPID = cmd.Process.Pid
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", b.backendPID)); exe != b.self {
		return fmt.Errorf("backend pid %d is %s, not %s", b.backendPID, exe, b.self)
	}
	return nil
}

// measure runs one scenario through one candidate with a fresh proxy.
func (b *bench) measure(ctx context.Context, rep int, sc scenario, c candidate) sample {
	s := sample{Rep: rep, Scenario: sc.name, Candidate: c.name}
	fail := func(err error) sample { s.Err = err.Error(); return s }
	addr := sc.target
	var proxy *exec.Cmd
	if c.argv != nil {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
		argv := c.argv(b, sc.target)
		tag := fmt.Sprintf("%s-%s-%d", sc.name, strings.NewReplacer(" ", "", "-", "").Replace(c.name), rep)
		if b.profileDir != "" && argv[0] == b.proxy {
			argv = append([]string{argv[0], "--cpuprofile", filepath.Join(b.profileDir, tag+".pprof")}, argv[1:]...)
		}
		proxy = exec.Command("systemd-socket-activate", append([]string{"-l", addr}, argv...)...)
		logf, err := os.Create(filepath.Join(b.logDir, tag+".log"))
		if err != nil {
			return fail(err)
		}
		defer logf.Close()
		proxy.Stdout, proxy.Stderr = logf, logf
		if err := start(proxy); err != nil {
			return fail(err)
		}
		defer stop(proxy, 3*time.Second)
		s.ProxyPID = proxy.Process.Pid
		// systemd-socket-activate binds, then execs the proxy at the first
		// connection: the warm-up starts it, and checks the path works.
		if err := warm(addr, sc.target == afterEOFPort); err != nil {
			return fail(fmt.Errorf("warm-up through %s: %w", addr, err))
		}
		s.ProxyExec, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", s.ProxyPID))
	}
	argv := append([]string{b.self, "load", "--addr", addr}, sc.load...)
	if c.argv == nil {
		argv = append([]string{"ip", "netns", "exec", b.netns}, argv...)
	}
	var base procMem
	if proxy != nil {
		base, _ = readProc(s.ProxyPID)
		s.BaseRSS, s.BaseFDs = base.RSSKiB, base.FDs
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := start(cmd); err != nil {
		return fail(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	line, rerr := bufio.NewReader(stdout).ReadString('\n')
	if rerr == nil {
		rerr = json.Unmarshal([]byte(line), &s.Result)
	}
	if sc.name == "idle1000" && proxy != nil && rerr == nil {
		// idle connections are measured idle: past bro-proxy's settle time (1 s
		// without connection churn, when it collects garbage and shrinks stacks)
		time.Sleep(1500 * time.Millisecond)
		held, _ := readProc(s.ProxyPID)
		s.HeldRSS, s.HeldFDs = held.RSSKiB, held.FDs
		if s.Result.Held > 0 {
			s.KiBPer = float64(held.RSSKiB-base.RSSKiB) / float64(s.Result.Held)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	forget(cmd)
	if rerr != nil || werr != nil {
		return fail(fmt.Errorf("load %s: %v %v: %s", strings.Join(sc.load, " "), rerr, werr, strings.TrimSpace(stderr.String())))
	}
	if proxy != nil {
		// the pool must shrink back: after the idle load, wait up to 5 s
		// for the baseline; after the others, look once
		t := time.Now()
		wait := 100 * time.Millisecond
		if sc.name == "idle1000" {
			wait = 5 * time.Second
		}
		var after procMem
		for {
			after, _ = readProc(s.ProxyPID)
			if after.FDs <= base.FDs || time.Since(t) > wait {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		s.AfterFDs, s.AfterMS = after.FDs, time.Since(t).Milliseconds()
		s.PeakRSS = after.HWMKiB
		s.CPUSecs = float64(after.CPUTicks-base.CPUTicks) / 100
	}
	return s
}

// warm connects (retrying while the socket is not bound yet) and checks
// one exchange; for the after-EOF backend, one half-close exchange.
func warm(addr string, afterEOF bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			defer c.Close()
			c.SetDeadline(deadline)
			if afterEOF {
				c.(*net.TCPConn).CloseWrite()
				_, err = io.ReadAll(c)
				return err
			}
			return roundTrip(c, []byte("warm-up\n"), make([]byte, 8))
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

func countReps(samples []sample) int {
	n := 0
	for _, s := range samples {
		n = max(n, s.Rep)
	}
	return n
}
