package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The two paths a connection takes to its backend, and the backends on them.

const (
	echoAddr     = "127.0.0.1:7000"
	afterEOFAddr = "127.0.0.1:7001"
	pgAddr       = "127.0.0.1:5432"
)

// backend is a server and the network namespace it listens in.
type backend struct {
	path  string   // "netns" (root's, ip netns) or "rootless" (a Network=none container)
	pid   int      // a process in the namespace: bro-proxy --pid, nsenter -t
	netns string   // netns: /run/netns/NAME, for bro-proxy --netns
	owner *account // rootless: the container's user, who runs the proxies
}

// enter is the prefix that runs a command as root inside the backend's
// network namespace: the direct candidate's client.
func (be backend) enter() []string { return []string{"nsenter", "-t", strconv.Itoa(be.pid), "-n"} }

// account is the rootless user.
type account struct {
	name, home, runtime string
	uid, gid            int
	groups              []uint32
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &account{name: name, home: u.HomeDir}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	a.runtime = fmt.Sprintf("/run/user/%d", a.uid)
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			a.groups = append(a.groups, uint32(n))
		}
	}
	if _, err := os.Stat(a.runtime); err != nil {
		return nil, fmt.Errorf("user %s: %w (run test/rig/rig-up.sh)", name, err)
	}
	return a, nil
}

// env is what a login would give the user (as test/rig/as-user.sh does).
func (a *account) env() []string {
	return []string{"HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name, "LANG=C.UTF-8",
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "XDG_RUNTIME_DIR=" + a.runtime,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + a.runtime + "/bus"}
}

// command runs argv as the user with that environment, from /tmp (rootless
// podman cannot start in /root). The child switches credentials itself:
// there is no runuser in between, so the pid started is the pid that runs
// (systemd-socket-activate's LISTEN_PID holds, and the proxy's pid is known).
func (a *account) command(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = a.env()
	cmd.Dir = "/tmp"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: a.groups}}
	return cmd
}

// run runs argv as the user and returns its output, bounded to 3 minutes.
func (a *account) run(argv ...string) (string, error) {
	cmd := a.command(argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if cmd.Process != nil {
				cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	close(done)
	if err != nil {
		return string(out), fmt.Errorf("%s (as %s): %w: %s", strings.Join(argv, " "), a.name, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// setupNetns creates the bare namespace and starts the echo backend in it;
// ip netns exec execs broload, so the pid started is the server's.
func (b *bench) setupNetns() (backend, error) {
	be := backend{path: "netns", netns: "/run/netns/" + b.netns}
	if out, err := exec.Command("ip", "netns", "add", b.netns).CombinedOutput(); err != nil {
		return be, fmt.Errorf("ip netns add %s: %v: %s", b.netns, err, out)
	}
	b.cleanups = append(b.cleanups, func() { exec.Command("ip", "netns", "del", b.netns).Run() })
	if out, err := exec.Command("ip", "-n", b.netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return be, fmt.Errorf("ip -n %s link set lo up: %v: %s", b.netns, err, out)
	}
	cmd := exec.Command("ip", "netns", "exec", b.netns, b.broload, "serve", "--raw",
		"--listen", echoAddr, "--after-eof-listen", afterEOFAddr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return be, err
	}
	if err := start(cmd); err != nil {
		return be, err
	}
	r := bufio.NewReader(stderr)
	for range 2 {
		if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "serving") {
			return be, fmt.Errorf("echo backend in %s did not start: %q %v", b.netns, line, err)
		}
	}
	go io.Copy(io.Discard, r)
	be.pid = cmd.Process.Pid
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", be.pid)); exe != b.broload {
		return be, fmt.Errorf("backend pid %d is %s, not %s", be.pid, exe, b.broload)
	}
	return be, nil
}

// setupRootless starts the user's two Network=none containers: the echo
// backend (broload, static, bind-mounted into busybox) and PostgreSQL.
func (b *bench) setupRootless(ctx context.Context) (echo, pg backend, err error) {
	a := b.owner
	echo = backend{path: "rootless", owner: a}
	pg = echo
	echoName := fmt.Sprintf("bench-echo-%d", os.Getpid())
	pgName := fmt.Sprintf("bench-pg-%d", os.Getpid())
	for _, name := range []string{echoName, pgName} {
		b.cleanups = append(b.cleanups, func() { a.run("podman", "rm", "-f", "-t", "0", "--ignore", name) })
	}
	if _, err := a.run("podman", "run", "-d", "--name", echoName, "--network", "none",
		"-v", b.broload+":/srv/echo:ro,Z", b.image,
		"/srv/echo", "serve", "--raw", "--listen", echoAddr, "--after-eof-listen", afterEOFAddr); err != nil {
		return echo, pg, err
	}
	if b.withPG {
		if _, err := a.run("podman", "run", "-d", "--name", pgName, "--network", "none",
			"-e", "POSTGRES_HOST_AUTH_METHOD=trust", b.pgImage); err != nil {
			return echo, pg, err
		}
	}
	if echo.pid, err = containerPID(a, echoName); err != nil {
		return echo, pg, err
	}
	if err := waitListening(ctx, echo.pid, 7000, 30*time.Second); err != nil {
		return echo, pg, fmt.Errorf("container %s: %w", echoName, err)
	}
	if !b.withPG {
		return echo, pg, nil
	}
	if pg.pid, err = containerPID(a, pgName); err != nil {
		return echo, pg, err
	}
	// initdb, then postgres listens; pgbench -i fills the tables for -S
	if err := waitListening(ctx, pg.pid, 5432, 120*time.Second); err != nil {
		logs, _ := a.run("podman", "logs", "--tail", "20", pgName)
		return echo, pg, fmt.Errorf("container %s: %w; its log: %s", pgName, err, logs)
	}
	init := append(pg.enter(), b.pgbench, "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "postgres")
	if out, err := exec.CommandContext(ctx, init[0], init[1:]...).CombinedOutput(); err != nil {
		return echo, pg, fmt.Errorf("pgbench -i: %v: %s", err, out)
	}
	return echo, pg, nil
}

func containerPID(a *account, name string) (int, error) {
	out, err := a.run("podman", "inspect", "-f", "{{.State.Pid}}", name)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("podman inspect %s: pid %q", name, out)
	}
	return pid, nil
}

// waitListening waits until something listens on 127.0.0.1:port (or any
// address) in pid's network namespace, read from /proc/PID/net/tcp: no
// connection is made, so no server counts a probe.
func waitListening(ctx context.Context, pid, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := fmt.Sprintf(":%04X ", port)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %s", port, timeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// preflight checks the tools and images before anything starts.
func (b *bench) preflight() error {
	for _, p := range []string{b.proxy, b.broload, b.socketProxyd} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if !b.paths["rootless"] {
		return nil
	}
	var miss []string
	if _, err := exec.LookPath(b.pasta); err != nil && (b.cands == nil || b.cands["pasta"]) {
		miss = append(miss, b.pasta+" (apt-get install passt; test/rig/rig-up.sh installs it)")
	}
	if _, err := exec.LookPath(b.pgbench); err != nil && b.withPG {
		miss = append(miss, b.pgbench+" (apt-get install postgresql-client-15)")
	}
	if len(miss) > 0 {
		return errors.New("missing: " + strings.Join(miss, ", "))
	}
	for _, img := range []string{b.image, b.pgImage} {
		if img == b.pgImage && !b.withPG {
			continue
		}
		if _, err := b.owner.run("podman", "image", "exists", img); err != nil {
			return fmt.Errorf("%s has no image %s (run test/rig/rig-up.sh)", b.owner.name, img)
		}
	}
	// the user must reach the binaries it runs (brobench's directory is 0755)
	for _, p := range []string{b.proxy, b.broload} {
		if _, err := b.owner.run("test", "-x", p); err != nil {
			return fmt.Errorf("%s cannot run %s: %w", b.owner.name, filepath.Dir(p), err)
		}
	}
	return nil
}
