// Command bro-proxy carries socket-activated connections straight into a
// container's network namespace.
//
// It inherits its listening sockets from systemd (LISTEN_FDS), finds the
// container through the record bro-hook wrote (or a namespace given with
// --pid or --netns, or its own namespace, as a drop-in for
// systemd-socket-proxyd), and connects each client to TARGET inside that
// namespace, copying bytes in the kernel. Rootless, it needs no privilege:
// a helper joins the user's own rootless user namespace to create sockets.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"github.com/brothaman/brothaman-go/pkg/ns"
	_ "github.com/brothaman/brothaman-go/pkg/ns/nsenter" // the namespace helper's constructor (ns.RunHelper)
	"github.com/brothaman/brothaman-go/pkg/proxy"
	"github.com/brothaman/brothaman-go/pkg/record"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

type options struct {
	container        string
	startUnit        string
	pid              int
	netns            string
	containerTimeout time.Duration
	connectTimeout   time.Duration
	connectionsMax   int
	exitIdle         time.Duration
	drainTimeout     time.Duration
	udpIdle          time.Duration
	udpFlowsMax      int
	idleTimeout      time.Duration
	keepAlive        time.Duration
	logLevel         string
	targets          proxy.Targets
	proxyProto       proxy.ProxyProtocols
	allow            string
	target           string
	handoff          bool
	waitReady        bool
}

const usageText = `Proxy connections on sockets inherited from systemd (LISTEN_FDS) to TARGET
(HOST:PORT, or a unix socket path) as seen inside the backend's network
namespace, which is one of:
  --container NAME   the container bro-hook recorded (name, unit or id);
                     waits for it to start, follows it across restarts
  --pid PID          the network namespace of process PID
  --netns PATH       a network namespace file (/run/netns/NAME)
  (none)             this process's own namespace, like systemd-socket-proxyd

Durations are systemd time spans: 500ms, 90s, 5min, "1h 30min", 90 (seconds).`

const examples = `# what bro-activate writes into NAME-activator.service:
bro-proxy --container pg --start-unit pg.service --exit-idle-time 5min --target 127.0.0.1:5432

# try it by hand, without units:
systemd-socket-activate -l 127.0.0.1:8080 bro-proxy --pid 1234 127.0.0.1:80

# a drop-in for systemd-socket-proxyd:
bro-proxy -c 256 --exit-idle-time 30s 127.0.0.1:8080`

// newCommand defines bro-proxy's options on o, with their defaults.
func newCommand(o *options) *cli.Command {
	c := cli.New("bro-proxy", "[OPTIONS] [TARGET]", usageText, examples)
	fs := c.Flags
	fs.StringVar(&o.container, "container", "", "follow the container `NAME` (or id, or quadlet unit) through bro-hook's records")
	fs.StringVar(&o.startUnit, "start-unit", "", "with --container: start `UNIT` (systemctl start --no-block) when a client waits for a container that is not running")
	fs.IntVar(&o.pid, "pid", 0, "dial inside the network namespace of `PID`")
	fs.StringVar(&o.netns, "netns", "", "dial inside the network namespace file `PATH`")
	c.Complete("netns", cli.ValueFiles)
	c.Duration(&o.containerTimeout, "container-timeout", 60*time.Second, "how long a client waits for the container to appear")
	c.Duration(&o.connectTimeout, "connect-timeout", 30*time.Second, "how long a client waits for the backend to accept")
	fs.IntVarP(&o.connectionsMax, "connections-max", "c", 4096, "at most `N` connections at once; beyond it, stop accepting: clients wait in the backlog")
	c.Duration(&o.exitIdle, "exit-idle-time", 0, "exit after this long without connections (0: never)")
	c.Duration(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long open connections may finish")
	c.Duration(&o.udpIdle, "udp-idle-timeout", 60*time.Second, "a UDP client's flow ends after this long without datagrams")
	fs.IntVar(&o.udpFlowsMax, "udp-flows-max", 1024, "at most `N` UDP clients served at once")
	c.Duration(&o.idleTimeout, "idle-timeout", 0, "close a connection after this long without data either way (0: never)")
	c.Duration(&o.keepAlive, "keepalive", 0, "TCP keepalive: first probe after this idle time, then as often, 3 probes (0: Go's default, 15s, on clients)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warning or error")
	c.Complete("log-level", "debug info warning error")
	fs.Var(&o.targets, "target", "target for the inherited socket named NAME, or for the next one in order; repeatable")
	fs.Var(&o.proxyProto, "proxy-protocol", "send a PROXY protocol header so the backend sees the client's address; for the socket named NAME, or all; repeatable")
	c.Complete("proxy-protocol", "v1 v2")
	fs.StringVar(&o.allow, "allow", "", "only these clients may connect (the user bro-proxy runs as always may): `LIST` of NAME, uid:N, @GROUP, IP or IP/PREFIX")
	fs.BoolVar(&o.handoff, "handoff", false, "be the handoff agent of --start-unit: give the inherited host sockets to its containers' bind() through their seccomp listeners (the socket named \"seccomp\"); relay nothing")
	fs.BoolVar(&o.waitReady, "wait-ready", false, "hold clients until --start-unit is active (Notify=): with --handoff in the host sockets, with --container before they reach the container")
	return c
}

// parseFlags returns the options, or cli.ErrDone after --help, --version
// or --completion, or an error naming the bad value.
func parseFlags(args []string) (*options, error) {
	o := &options{}
	c := newCommand(o)
	if err := c.Parse(args); err != nil {
		return nil, err
	}
	fs := c.Flags
	switch fs.NArg() {
	case 0:
	case 1:
		o.target = fs.Arg(0)
	default:
		return nil, fmt.Errorf("want at most one TARGET, got %d arguments", fs.NArg())
	}
	given := 0
	for _, set := range []bool{o.container != "", o.pid != 0, o.netns != ""} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("give at most one of --container, --pid and --netns")
	}
	if o.allow != "" {
		if _, err := allow.Parse(o.allow); err != nil {
			return nil, err
		}
		if o.handoff {
			return nil, errors.New("--allow cannot be used with --handoff: the container takes the socket itself and nothing checks who connects")
		}
	}
	if o.handoff || (o.waitReady && o.container == "") {
		return o, handoffFlags(o, c)
	}
	if o.waitReady && o.startUnit == "" {
		return nil, errors.New("--wait-ready needs --start-unit (the unit whose start returns once it is ready)")
	}
	if o.startUnit != "" && o.container == "" {
		return nil, errors.New("--start-unit needs --container")
	}
	if o.pid < 0 {
		return nil, fmt.Errorf("--pid %d: want a process id", o.pid)
	}
	if o.connectionsMax < 1 {
		return nil, fmt.Errorf("--connections-max %d: want at least 1", o.connectionsMax)
	}
	if o.target == "" && o.targets.Empty() {
		return nil, errors.New("no target: give TARGET or --target")
	}
	return o, nil
}

func main() {
	if ns.IsHelper() {
		ns.RunHelper() // never returns
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, cli.ErrDone) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bro-proxy: %v\n", err)
		os.Exit(2)
	}
	log := newLogger(o.logLevel)
	serve := run
	if o.handoff {
		serve = func(o *options, l *logrus.Logger) error { return runHandoff(o, logrus.NewEntry(l)) }
	}
	if err := serve(o, log); err != nil {
		log.Error(err)
		os.Exit(1)
	}
}

func newLogger(level string) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	// Under systemd the journal stamps each line itself.
	_, journal := os.LookupEnv("JOURNAL_STREAM")
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: journal, FullTimestamp: true})
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bro-proxy: --log-level %q: want debug, info, warning or error\n", level)
		os.Exit(2)
	}
	log.SetLevel(lvl)
	return log
}

func run(o *options, logger *logrus.Logger) error {
	log := logrus.NewEntry(logger)
	// first, in this thread of the host's namespaces (allow.go)
	guard, err := newGuard(o.allow, log)
	if err != nil {
		return err
	}
	defer guard.Close()
	fds, err := fdpass.Listen()
	if err != nil {
		return err
	}
	listeners, err := proxy.Inherit(fds, o.targets, o.target, o.proxyProto)
	if err != nil {
		return err
	}
	for _, l := range listeners {
		if l.Datagram() && o.proxyProto.Version(l.Name()) != 0 {
			log.WithField("socket", l.Name()).Warn("PROXY protocol is for stream sockets; not sent on this UDP socket")
		}
	}
	maxConns := raiseNoFile(o.connectionsMax, log)
	mount := false
	for _, l := range listeners {
		mount = mount || l.Target().Network == "unix"
	}
	backend, err := newBackend(o, log, mount, proxy.Prefetch(listeners))
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	defer backend.Close()
	p := &proxy.Proxy{
		Listeners: listeners, Backend: backend, ConnectTimeout: o.connectTimeout,
		ContainerTimeout: o.containerTimeout, MaxConns: maxConns, IdleExit: o.exitIdle,
		DrainTimeout: o.drainTimeout, UDPIdle: o.udpIdle, UDPFlowsMax: o.udpFlowsMax,
		IdleTimeout: o.idleTimeout, KeepAlive: o.keepAlive, Log: log, Allow: guard,
		Status: func(s string) { daemon.SdNotify(false, "STATUS="+s) },
	}
	for _, l := range listeners {
		log.WithFields(logrus.Fields{"socket": l.Name(), "listen": l.Addr().String(), "target": l.Target().String()}).Info("listening")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	daemon.SdNotify(false, "READY=1\nSTATUS="+p.StatusLine())
	// STOPPING=1 when the signal comes, before the drain (as
	// systemd-socket-proxyd): systemctl shows "deactivating" meanwhile.
	served := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			daemon.SdNotify(false, "STOPPING=1")
		case <-served:
		}
	}()
	err = p.Serve(ctx)
	close(served)
	if ctx.Err() == nil {
		daemon.SdNotify(false, "STOPPING=1")
	}
	return err
}

// newBackend picks where backend sockets come from. mount: a target is a
// unix socket path, which --container and --pid resolve inside the
// process's own filesystem (its mount namespace); --netns and the own
// namespace resolve it on the host.
func newBackend(o *options, log *logrus.Entry, mount bool, wrap func(ns.Sockets) ns.Sockets) (proxy.Backend, error) {
	switch {
	case o.container != "":
		uid, err := record.HostUID()
		if err != nil {
			return nil, err
		}
		path, err := record.StateDirPath()
		if err != nil {
			return nil, err
		}
		dir, err := record.OpenStateDir(path, true)
		if err != nil {
			return nil, err
		}
		b, err := proxy.NewContainer(proxy.ContainerConfig{Name: o.container, UID: uid, Dir: dir, Timeout: o.containerTimeout,
			Mount: mount, StartUnit: o.startUnit, StartAtOnce: o.allow != "", WaitReady: o.waitReady, Wrap: wrap, Log: log})
		if err != nil {
			dir.Close()
			return nil, err
		}
		return b, nil
	case o.pid != 0:
		var dir *record.StateDir
		if path, err := record.StateDirPath(); err == nil {
			if d, err := record.OpenStateDir(path, false); err == nil {
				dir = d
				defer dir.Close()
			}
		}
		b, err := proxy.PID(o.pid, dir, mount, wrap)
		if err != nil {
			return nil, err
		}
		log.WithField("pid", o.pid).Info("entered network namespace")
		return b, nil
	case o.netns != "":
		return proxy.NetNS(o.netns, wrap)
	default:
		return proxy.Own(), nil
	}
}

// raiseNoFile lifts the soft descriptor limit to the hard one and returns
// how many connections may be open at once: conns (--connections-max), or
// fewer if the limit cannot hold that many. Each connection holds its two
// sockets (the relay borrows pipes only while bytes are in flight, from a
// small pool), plus a fixed few for the process. A proxy that accepted
// more clients than it has descriptors for could deadlock: every
// descriptor held by a client waiting for its backend socket, none free for
// one. So below what conns needs it serves fewer at once, the others wait
// in the backlog, and it says so once.
func raiseNoFile(conns int, log *logrus.Entry) int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return conns
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			log.WithError(err).Warn("cannot raise the open file limit")
		} else {
			lim = raised
		}
	}
	n := connsFor(lim.Cur, conns)
	if n < conns {
		log.WithFields(logrus.Fields{"limit": lim.Cur, "want": uint64(conns)*fdsPerConn + fdsFixed, "connections": n}).
			Warn("open file limit below what --connections-max needs (2 per connection): serving fewer at once, the others wait in the backlog; raise LimitNOFILE=")
	}
	return n
}

// connsFor is how many connections a descriptor limit holds, at most conns
// and at least one.
func connsFor(limit uint64, conns int) int {
	if limit < fdsFixed+fdsPerConn {
		return 1
	}
	return int(min(uint64(conns), (limit-fdsFixed)/fdsPerConn))
}

// fdsPerConn, fdsFixed: what a connection and the process itself hold.
const (
	fdsPerConn = 2
	fdsFixed   = 100
)
