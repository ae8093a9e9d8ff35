package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/pkg/record"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// cold is the cold-start benchmark's setup: one Network=none PostgreSQL
// quadlet (benchpg) behind two activators on two loopback ports.
type cold struct {
	user, home, runtime string
	uid                 int
	proxy, activate     string
	image               string
	broPort, labPort    int
	ctr                 string
	wrote               []string // files to remove at the end
	usedActivate        bool
}

const (
	pgName  = "benchpg"
	pgLab   = "benchpg-lab"
	pgBroAc = "benchpg-activator"
)

func coldstart(args []string) error {
	fs := flag.NewFlagSet("coldstart", flag.ContinueOnError)
	c := &cold{ctr: pgName}
	fs.StringVar(&c.user, "user", "lingeruser", "the rig user with a systemd --user manager")
	fs.StringVar(&c.proxy, "proxy", "/usr/local/bin/bro-proxy", "bro-proxy for the activator (the user must be able to run it)")
	fs.StringVar(&c.activate, "bro-activate", "/usr/local/bin/bro-activate", "bro-activate, if it exists and works; else the units are written here")
	fs.StringVar(&c.image, "image", "localhost/postgres:15", "PostgreSQL image")
	runs := fs.Int("runs", 12, "cold starts per candidate")
	warmN := fs.Int("warm", 50, "warm probes per path")
	budget := fs.Duration("budget", 8*time.Minute, "stop starting runs after this")
	fs.IntVar(&c.broPort, "bro-port", 25432, "port of the bro-proxy activator")
	fs.IntVar(&c.labPort, "lab-port", 25433, "port of the lab's activator")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("coldstart: needs root (runuser, and the floor enters the container's namespace)")
	}
	u, err := user.Lookup(c.user)
	if err != nil {
		return err
	}
	c.home = u.HomeDir
	c.uid, _ = strconv.Atoi(u.Uid)
	c.runtime = fmt.Sprintf("/run/user/%d", c.uid)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	defer c.cleanup()
	if err := c.setup(); err != nil {
		return err
	}
	hostInfo()
	fmt.Printf("activator units: %s\n", map[bool]string{true: "bro-activate " + c.activate, false: "written by brobench"}[c.usedActivate])

	// First start: initdb (about 0.6 s more), not a cold start to measure.
	if _, err := probe(c.addr(c.broPort), 60*time.Second); err != nil {
		return fmt.Errorf("first start through bro-proxy: %w (journal: %s)", err, c.journal(pgBroAc+".service"))
	}
	if _, err := probe(c.addr(c.labPort), 60*time.Second); err != nil {
		return fmt.Errorf("first start through the lab's activator: %w (journal: %s)", err, c.journal(pgLab+".service"))
	}

	res := map[string][]float64{}
	t0 := time.Now()
	for run := 1; run <= *runs; run++ {
		if run > 1 && time.Since(t0)+time.Since(t0)/time.Duration(run-1) > *budget {
			fmt.Fprintf(os.Stderr, "brobench: budget %s: stopping after %d runs\n", *budget, run-1)
			break
		}
		fmt.Fprintf(os.Stderr, "brobench: cold start run %d/%d (%s)\n", run, *runs, time.Since(t0).Round(time.Second))
		for _, cand := range []string{"bro", "lab", "floor"} {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := c.stopAll(); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond)
			var total, fromSvc time.Duration
			var err error
			switch cand {
			case "bro":
				total, fromSvc, err = c.viaSocket(c.broPort)
			case "lab":
				total, fromSvc, err = c.viaSocket(c.labPort)
			case "floor":
				total, fromSvc, err = c.floor()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "brobench: %s run %d: %v\n", cand, run, err)
				continue
			}
			res[cand] = append(res[cand], ms(total))
			res[cand+"-svc"] = append(res[cand+"-svc"], ms(fromSvc))
		}
	}

	// Warm: everything up, then interleaved probes through each path and
	// straight to the server inside the container's namespace.
	if err := c.stopAll(); err != nil {
		return err
	}
	for _, p := range []int{c.broPort, c.labPort} {
		if _, err := probe(c.addr(p), 60*time.Second); err != nil {
			return fmt.Errorf("warm-up on port %d: %w", p, err)
		}
	}
	rec, err := c.waitRecord(time.Now().Add(10 * time.Second))
	if err != nil {
		return err
	}
	direct, err := inNetNS(rec.PID)
	if err != nil {
		return err
	}
	defer direct.close()
	for i := 0; i < *warmN; i++ {
		for _, p := range []struct {
			name string
			f    func() (time.Duration, error)
		}{
			{"warm-direct", func() (time.Duration, error) { return direct.probe("127.0.0.1:5432") }},
			{"warm-bro", func() (time.Duration, error) { return probe(c.addr(c.broPort), 5*time.Second) }},
			{"warm-lab", func() (time.Duration, error) { return probe(c.addr(c.labPort), 5*time.Second) }},
		} {
			d, err := p.f()
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			res[p.name] = append(res[p.name], ms(d))
		}
	}
	fmt.Printf("\nrun %s\n\n", time.Since(t0).Round(time.Second))
	printColdTable(res)
	return nil
}

func (c *cold) addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// asUser runs a command as the rig user, from /tmp (rootless podman cannot
// chdir to /root), with the user manager's runtime directory.
func (c *cold) asUser(stdin string, argv ...string) (string, error) {
	cmd := exec.Command("runuser", append([]string{"-u", c.user, "--", "env",
		"XDG_RUNTIME_DIR=" + c.runtime, "DBUS_SESSION_BUS_ADDRESS=unix:path=" + c.runtime + "/bus"}, argv...)...)
	cmd.Dir = "/tmp"
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (c *cold) systemctl(args ...string) error {
	_, err := c.asUser("", append([]string{"systemctl", "--user"}, args...)...)
	return err
}

func (c *cold) writeUserFile(path, content string) error {
	if _, err := c.asUser("", "mkdir", "-p", filepath.Dir(path)); err != nil {
		return err
	}
	if _, err := c.asUser(content, "sh", "-c", `cat > "$1"`, "sh", path); err != nil {
		return err
	}
	c.wrote = append(c.wrote, path)
	return nil
}

func (c *cold) setup() error {
	data := filepath.Join(c.home, "benchpg-data")
	if _, err := c.asUser("", "mkdir", "-p", data); err != nil {
		return err
	}
	quadlet := filepath.Join(c.home, ".config/containers/systemd", pgName+".container")
	if err := c.writeUserFile(quadlet, fmt.Sprintf(`# brobench coldstart: removed at the end of the run
[Unit]
Description=brobench PostgreSQL (cold start benchmark)

[Container]
Image=%s
ContainerName=%s
Environment=POSTGRES_PASSWORD=benchpass
Volume=%s:/var/lib/postgresql/data
Network=none
Annotation=bro.activate=127.0.0.1:%d:5432
`, c.image, c.ctr, data, c.broPort)); err != nil {
		return err
	}
	units := filepath.Join(c.home, ".config/systemd/user")
	// bro-proxy's activator: bro-activate's units if it works, else ours.
	if _, err := os.Stat(c.activate); err == nil {
		if _, err := c.asUser("", c.activate, "--force", "--proxy", c.proxy, pgName); err == nil {
			c.usedActivate = true
			c.wrote = append(c.wrote, filepath.Join(units, pgBroAc+".socket"), filepath.Join(units, pgBroAc+".service"))
		} else {
			fmt.Fprintf(os.Stderr, "brobench: bro-activate failed, writing the units: %v\n", err)
		}
	}
	if !c.usedActivate {
		if err := c.writeUserFile(filepath.Join(units, pgBroAc+".socket"), fmt.Sprintf(`[Socket]
ListenStream=127.0.0.1:%d
NoDelay=true
Backlog=4096
`, c.broPort)); err != nil {
			return err
		}
		if err := c.writeUserFile(filepath.Join(units, pgBroAc+".service"), fmt.Sprintf(`[Unit]
Requires=%s.socket
After=%s.socket
Wants=%s.service

[Service]
Type=notify
ExecStart=%s --container %s 127.0.0.1:5432
`, pgBroAc, pgBroAc, pgName, c.proxy, c.ctr)); err != nil {
			return err
		}
	}
	// The lab's activator (networking lab 1.3-1.4): poll with podman
	// inspect and pg_isready every second, then systemd-socket-proxyd in
	// the container's namespace. The lab's bro-helper does not exist;
	// nsenter under podman unshare is its privilege-free equivalent, and
	// the inner sh sets LISTEN_PID to the pid that execs socket-proxyd
	// (podman unshare runs its command as a child).
	if err := c.writeUserFile(filepath.Join(units, pgLab+".socket"), fmt.Sprintf(`[Unit]
Description=brobench: the lab's PostgreSQL activator socket

[Socket]
ListenStream=127.0.0.1:%d
NoDelay=true
ReusePort=true
Backlog=128
`, c.labPort)); err != nil {
		return err
	}
	if err := c.writeUserFile(filepath.Join(units, pgLab+".service"), fmt.Sprintf(`[Unit]
Description=brobench: the lab's PostgreSQL activator (networking lab 1.3)
Requires=%[1]s.socket %[2]s.service
After=%[1]s.socket %[2]s.service

[Service]
Type=simple
ExecStartPre=/usr/bin/env sh -c "/usr/bin/podman inspect -f 'TARGET_PID={{.State.Pid}}' %[3]s > %%t/%[1]s.env"
EnvironmentFile=-%%t/%[1]s.env
ExecStartPre=/usr/bin/env sh -c "i=0; while [ $$i -lt 20 ]; do /usr/bin/podman unshare nsenter -t \"$$TARGET_PID\" -n pg_isready -h 127.0.0.1 -p 5432 && exit 0; i=$$((i+1)); sleep 1; done; exit 1"
ExecStart=/usr/bin/env sh -c "exec /usr/bin/podman unshare nsenter -t \"$$TARGET_PID\" -n sh -c 'LISTEN_PID=$$$$ exec /lib/systemd/systemd-socket-proxyd 127.0.0.1:5432'"
TimeoutStopSec=20
`, pgLab, pgName, c.ctr)); err != nil {
		return err
	}
	if err := c.systemctl("daemon-reload"); err != nil {
		return err
	}
	if err := c.systemctl("start", pgBroAc+".socket", pgLab+".socket"); err != nil {
		return err
	}
	return c.stopAll()
}

func (c *cold) journal(unit string) string {
	out, _ := c.asUser("", "journalctl", "--user", "-o", "cat", "-n", "15", "-u", unit)
	return out
}

// stopAll stops both activators and the container, and waits until the
// container is gone (quadlet's ExecStop removes it).
func (c *cold) stopAll() error {
	if err := c.systemctl("stop", pgBroAc+".service", pgLab+".service", pgName+".service"); err != nil {
		return err
	}
	c.systemctl("reset-failed", pgBroAc+".service", pgLab+".service", pgName+".service")
	return nil
}

// monoNow is CLOCK_MONOTONIC in microseconds, systemd's clock for
// *TimestampMonotonic.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}

// svcStart is when systemd began starting the container's service.
func (c *cold) svcStart() (int64, error) {
	out, err := c.asUser("", "systemctl", "--user", "show", "-p", "InactiveExitTimestampMonotonic", "--value", pgName+".service")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// viaSocket is a client's cold start: connect to the activator's socket,
// SSLRequest, until the first byte.
func (c *cold) viaSocket(port int) (total, fromSvc time.Duration, err error) {
	m0 := monoNow()
	d, err := probe(c.addr(port), 60*time.Second)
	if err != nil {
		return 0, 0, err
	}
	end := m0 + d.Microseconds()
	s, err := c.svcStart()
	if err != nil {
		return 0, 0, err
	}
	return d, time.Duration(end-s) * time.Microsecond, nil
}

// floor starts the container's service with systemctl and no proxy, finds
// the container through the hook's record, and probes PostgreSQL inside its
// namespace every millisecond until it answers.
func (c *cold) floor() (total, fromSvc time.Duration, err error) {
	m0 := monoNow()
	if err := c.systemctl("start", "--no-block", pgName+".service"); err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	rec, err := c.waitRecord(deadline)
	if err != nil {
		return 0, 0, err
	}
	n, err := inNetNS(rec.PID)
	if err != nil {
		return 0, 0, err
	}
	defer n.close()
	for {
		_, err := n.probe("127.0.0.1:5432")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, err
		}
		time.Sleep(time.Millisecond)
	}
	end := monoNow()
	s, err := c.svcStart()
	if err != nil {
		return 0, 0, err
	}
	return time.Duration(end-m0) * time.Microsecond, time.Duration(end-s) * time.Microsecond, nil
}

// waitRecord polls the hook's state directory for a live record of the
// container: the OCI hook writes it at prestart, before PostgreSQL runs.
func (c *cold) waitRecord(deadline time.Time) (*record.Record, error) {
	// Read the files directly: record.OpenStateDir refuses, rightly, a
	// directory that belongs to another uid, and we are root.
	dir := record.DefaultStateDir(c.uid)
	for {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			var r record.Record
			if json.Unmarshal(b, &r) == nil && r.Matches(c.ctr) && r.Alive() {
				return &r, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no live record of container %s in %s", c.ctr, dir)
		}
		time.Sleep(time.Millisecond)
	}
}

// nsProber runs probes from one goroutine locked to a thread that joined a
// container's network namespace; the thread is never unlocked, so it ends
// with the goroutine instead of going back to the scheduler.
type nsProber struct {
	req  chan string
	resp chan probeResult
}

type probeResult struct {
	d   time.Duration
	err error
}

func inNetNS(pid int) (*nsProber, error) {
	p := &nsProber{req: make(chan string), resp: make(chan probeResult)}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPid(pid)
		if err != nil {
			ready <- err
			return
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			ready <- fmt.Errorf("enter network namespace of pid %d: %w", pid, err)
			return
		}
		ready <- nil
		for addr := range p.req {
			// socket(2) runs on this thread, in this namespace.
			t0 := time.Now()
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				p.resp <- probeResult{0, err}
				continue
			}
			d, err := probeConn(conn, t0, 5*time.Second)
			conn.Close()
			p.resp <- probeResult{d, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *nsProber) probe(addr string) (time.Duration, error) {
	p.req <- addr
	r := <-p.resp
	return r.d, r.err
}

func (p *nsProber) close() { close(p.req) }

// cleanup stops and removes everything setup wrote, and the container.
func (c *cold) cleanup() {
	c.systemctl("stop", pgBroAc+".socket", pgLab+".socket", pgBroAc+".service", pgLab+".service", pgName+".service")
	if c.usedActivate {
		c.asUser("", c.activate, "--remove", pgName)
	}
	for _, f := range c.wrote {
		os.Remove(f)
	}
	os.Remove(filepath.Join(c.runtime, pgLab+".env"))
	c.systemctl("daemon-reload")
	c.systemctl("reset-failed")
	c.asUser("", "podman", "rm", "-f", "--ignore", c.ctr)
	c.asUser("", "podman", "unshare", "rm", "-rf", filepath.Join(c.home, "benchpg-data"))
}

func stats(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

func printColdTable(res map[string][]float64) {
	row := func(name, key, note string) float64 {
		med, lo, hi := stats(res[key])
		fmt.Printf("| %s | %.2f | %.2f | %.2f | %d | %s |\n", name, med, lo, hi, len(res[key]), note)
		return med
	}
	fmt.Println("| path | median ms | min | max | n | |")
	fmt.Println("|---|--:|--:|--:|--:|---|")
	floor := row("floor: `systemctl --user start` → first byte, no proxy", "floor", "from before systemctl runs")
	floorSvc := row("floor: service start → first byte", "floor-svc", "from InactiveExitTimestampMonotonic")
	bro := row("bro-proxy activator: connect → first byte", "bro", "")
	broSvc := row("bro-proxy activator: service start → first byte", "bro-svc", "")
	lab := row("lab activator: connect → first byte", "lab", "pg_isready loop + socket-proxyd")
	row("lab activator: service start → first byte", "lab-svc", "")
	wd := row("warm: direct inside the container's netns", "warm-direct", "connect + SSLRequest + 'N'")
	wb := row("warm: through bro-proxy", "warm-bro", "")
	wl := row("warm: through the lab's socket-proxyd", "warm-lab", "")
	fmt.Println()
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Printf("| target | value | |\n|---|---|---|\n")
	fmt.Printf("| cold start ≤ 0.65× the lab's activator | %.3f× (%.0f vs %.0f ms) | %s |\n", bro/lab, bro, lab, verdict(bro <= 0.65*lab))
	fmt.Printf("| within 10 ms of the floor (connect vs systemctl start) | %+.1f ms | %s |\n", bro-floor, verdict(bro-floor <= 10))
	fmt.Printf("| within 10 ms of the floor (service start → first byte) | %+.1f ms | %s |\n", broSvc-floorSvc, verdict(broSvc-floorSvc <= 10))
	fmt.Printf("| warm overhead per connection ≤ 0.3 ms | %+.3f ms (lab's socket-proxyd: %+.3f ms) | %s |\n", wb-wd, wl-wd, verdict(wb-wd <= 0.3))
}
