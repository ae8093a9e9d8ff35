package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/pkg/units"
)

const usageActivate = `Usage: bro-activate [flags] NAME

Writes NAME-activator.socket and NAME-activator.service for the quadlet
NAME.container: systemd listens on the host, and the first connection starts
bro-proxy, which starts NAME.service (the container) alongside and carries
every connection into the container's network namespace.

The ports come from the quadlet's Annotation=bro.activate=… (grammar
[[ip:]hostPort:]containerPort[/tcp|/udp], comma-separated, 127.0.0.1 unless
an address is given) or from --listen/--target; if the quadlet has no such
annotation, bro-activate adds one so the OCI hook records the container.

--idle-stop (or Annotation=bro.idle-stop=DURATION in the quadlet) stops
bro-proxy and the container after that long without clients; the next
connection starts both again. "bro-activate status [NAME...]" lists every
activator with its socket, container, proxy and counters.

Then run:
  systemctl --user daemon-reload && systemctl --user enable --now NAME-activator.socket

Flags:
`

const usageDirect = `Usage: bro-activate-direct [flags] NAME

Writes NAME.socket for the quadlet NAME.container: the first connection starts
the quadlet's own NAME.service, and Podman passes the listening sockets into
the container (LISTEN_FDS=N, LISTEN_PID=1, fds from 3 on). No proxy runs.

Use it only for servers that take their sockets from systemd (sd_listen_fds:
look for "socket activation" or LISTEN_FDS in the image's documentation).
A server that ignores LISTEN_FDS never answers: clients wait in the accept
queue. Try an image without writing units:
  systemd-socket-activate -l 127.0.0.1:8080 podman run --rm --network none IMAGE
then connect to 127.0.0.1:8080. For any other server use bro-activate.

The ports come from --listen or the quadlet's Annotation=bro.activate=…
(only the host side is used). Then run:
  systemctl --user daemon-reload && systemctl --user enable --now NAME.socket

Flags:
`

type options struct {
	direct         bool
	name           string
	listens        []string
	targets        []string
	idleStop       time.Duration
	suffix         string
	force          bool
	remove         bool
	dryRun         bool
	user, system   bool
	unitDir        string
	proxy          string
	connectionsMax int
	unixListen     string
	socketMode     string
	socketGroup    string
	unixTarget     string
	proxyProtocol  string
	connIdle       time.Duration
	keepAlive      time.Duration
	systemctl      func(args ...string) ([]byte, error) // tests: records systemctl calls
}

type listFlag struct{ values *[]string }

func (l listFlag) String() string     { return "" }
func (l listFlag) Set(v string) error { *l.values = append(*l.values, v); return nil }

// parseOptions parses flags and the NAME argument in any order
// (bro-activate NAME --force works too).
func parseOptions(args []string, direct bool, stderr io.Writer) (*options, error) {
	o := &options{direct: direct}
	fs := flag.NewFlagSet("bro-activate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(listFlag{&o.listens}, "listen", "host `[ip:]port[/proto]` to listen on; repeat for more ports")
	if !direct {
		fs.Var(listFlag{&o.targets}, "target", "container `port[/proto]` for the matching --listen; repeat for more ports")
		fs.DurationVar(&o.idleStop, "idle-stop", 0, "stop bro-proxy and the container after this `duration` without clients")
		fs.StringVar(&o.suffix, "service-name", units.DefaultSuffix, "unit names NAME-`SUFFIX`.socket/.service, for a second activator")
		fs.StringVar(&o.proxy, "proxy", defaultProxy(), "absolute `path` of bro-proxy")
		fs.IntVar(&o.connectionsMax, "connections-max", units.DefaultConnectionsMax, "bro-proxy's connection limit, and the socket's Backlog=")
		fs.StringVar(&o.unixListen, "listen-unix", "", "also listen on the unix socket `PATH` on the host (cross-user access by file permissions)")
		fs.StringVar(&o.socketMode, "socket-mode", "", "SocketMode= of --listen-unix (default 0660)")
		fs.StringVar(&o.socketGroup, "socket-group", "", "SocketGroup= of --listen-unix: the `group` allowed to connect")
		fs.StringVar(&o.unixTarget, "target-unix", "", "connect to the unix socket `PATH` inside the container's filesystem instead of its TCP port")
		fs.StringVar(&o.proxyProtocol, "proxy-protocol", "", "send a PROXY protocol header (`v1|v2`) so the server sees the client's address")
		fs.DurationVar(&o.connIdle, "conn-idle-timeout", 0, "close a connection after this `duration` without data either way")
		fs.DurationVar(&o.keepAlive, "keepalive", 0, "TCP keepalive probes after this `duration` idle, on both sides")
	}
	fs.BoolVar(&o.force, "force", false, "replace existing units")
	fs.BoolVar(&o.remove, "remove", false, "stop and delete the units bro-activate wrote (and the annotation it added; direct mode also stops NAME.service, which holds the socket)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the units instead of writing them")
	fs.BoolVar(&o.user, "user", false, "user units in ~/.config/systemd/user (default unless root)")
	fs.BoolVar(&o.system, "system", false, "system units in /etc/systemd/system (default for root)")
	fs.StringVar(&o.unitDir, "unit-dir", "", "write units into `dir` instead")
	fs.Usage = func() {
		if direct {
			fmt.Fprint(stderr, usageDirect)
		} else {
			fmt.Fprint(stderr, usageActivate)
		}
		fs.PrintDefaults()
	}
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(names) != 1:
		fs.Usage()
		return nil, fmt.Errorf("want exactly one NAME, got %d", len(names))
	case o.user && o.system:
		return nil, errors.New("invalid flags: --user and --system exclude each other")
	case o.idleStop < 0:
		return nil, fmt.Errorf("invalid --idle-stop %v: want a positive duration", o.idleStop)
	}
	o.name = strings.TrimSuffix(names[0], ".container")
	if !o.user && !o.system {
		o.user = os.Getuid() != 0
		o.system = !o.user
	}
	if o.unitDir == "" {
		o.unitDir = unitDir(o.user)
	}
	return o, nil
}

// defaultProxy is bro-proxy beside this binary, as make install puts it.
func defaultProxy() string {
	exe, err := os.Executable()
	if err != nil {
		return "/usr/local/bin/bro-proxy"
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Join(filepath.Dir(exe), "bro-proxy")
}

// unitDir is where an administrator's units go: systemd reads it before
// generator output, so hand-written units win over bro-generator's.
func unitDir(user bool) string {
	if !user {
		return "/etc/systemd/system"
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		cfg = filepath.Join(os.Getenv("HOME"), ".config")
	}
	return filepath.Join(cfg, "systemd/user")
}
