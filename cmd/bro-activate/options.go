package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/units"
)

const textActivate = `Writes NAME-activator.socket and NAME-activator.service for the quadlet
NAME.container: systemd listens on the host, and the first connection starts
bro-proxy, which starts NAME.service (the container) alongside and carries
every connection into the container's network namespace.

The ports come from the quadlet's Annotation=bro.activate=… (grammar
[[ip:]hostPort:]containerPort[/tcp|/udp], comma-separated, 127.0.0.1 unless
an address is given) or from --listen/--target; if the quadlet has no such
annotation, bro-activate adds one so the OCI hook records the container.

--idle-stop (or Annotation=bro.idle-stop=TIME in the quadlet) stops bro-proxy
and the container after that long without clients; the next connection starts
both again. Durations are systemd time spans: 90s, 5min, "1h 30min", 500ms.

Commands:
  bro-activate [OPTIONS] NAME        write the activator units (this page)
  bro-activate direct [OPTIONS] NAME the same as bro-activate-direct
  bro-activate status [NAME...]      every activator: socket, container, proxy, counters
  bro-activate completion SHELL      a bash, zsh or fish completion script`

const examplesActivate = `# the ports from the quadlet's Annotation=bro.activate=5432:
bro-activate test-postgresql
systemctl --user daemon-reload && systemctl --user enable --now test-postgresql-activator.socket

# host port 8080 to the container's 80, stop after 5 minutes without clients:
bro-activate --listen 127.0.0.1:8080 --target 80 --idle-stop 5min web

# look before writing, then take it all back:
bro-activate --dry-run web
bro-activate --remove web`

const textDirect = `Writes NAME.socket for the quadlet NAME.container: the first connection starts
the quadlet's own NAME.service, and Podman passes the listening sockets into
the container (LISTEN_FDS=N, LISTEN_PID=1, fds from 3 on). No proxy runs.

Use it only for servers that take their sockets from systemd (sd_listen_fds:
look for "socket activation" or LISTEN_FDS in the image's documentation).
A server that ignores LISTEN_FDS never answers: clients wait in the accept
queue. For any other server use bro-activate.

The ports come from --listen or the quadlet's Annotation=bro.activate=…
(only the host side is used).`

const examplesDirect = `# try an image without writing units, then connect to 127.0.0.1:8080:
systemd-socket-activate -l 127.0.0.1:8080 podman run --rm --network none IMAGE

bro-activate-direct --listen 127.0.0.1:8080 web
systemctl --user daemon-reload && systemctl --user enable --now web.socket`

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
	mode           string
	allow          string
	systemctl      func(args ...string) ([]byte, error) // tests: records systemctl calls
}

// newCommand defines the options of bro-activate (or, direct, of
// bro-activate-direct) on o, with their defaults.
func newCommand(o *options, direct bool) *cli.Command {
	var c *cli.Command
	if direct {
		c = cli.New("bro-activate-direct", "[OPTIONS] NAME", textDirect, examplesDirect)
	} else {
		c = cli.New("bro-activate", "[OPTIONS] NAME", textActivate, examplesActivate)
	}
	c.Operands = "quadlets"
	fs := c.Flags
	c.List(&o.listens, "listen", "l", "host `[IP:]PORT[/PROTO]` to listen on; repeat for more ports")
	if !direct {
		c.List(&o.targets, "target", "", "container `PORT[/PROTO]` for the matching --listen; repeat for more ports")
		c.Duration(&o.idleStop, "idle-stop", 0, "stop bro-proxy and the container after this long without clients (0: never)")
		fs.StringVar(&o.suffix, "service-name", units.DefaultSuffix, "unit names NAME-`SUFFIX`.socket/.service, for a second activator")
		fs.StringVar(&o.proxy, "proxy", defaultProxy(), "absolute `PATH` of bro-proxy")
		c.Complete("proxy", cli.ValueFiles)
		fs.IntVar(&o.connectionsMax, "connections-max", units.DefaultConnectionsMax, "bro-proxy's connection limit (`N`), and the socket's Backlog=")
		fs.StringVar(&o.unixListen, "listen-unix", "", "also listen on the unix socket `PATH` on the host (cross-user access by file permissions)")
		c.Complete("listen-unix", cli.ValueFiles)
		fs.StringVar(&o.socketMode, "socket-mode", "", "SocketMode= of --listen-unix: an octal `MODE` (default 0660)")
		fs.StringVar(&o.socketGroup, "socket-group", "", "SocketGroup= of --listen-unix: the `GROUP` allowed to connect")
		fs.StringVar(&o.unixTarget, "target-unix", "", "connect to the unix socket `PATH` inside the container's filesystem instead of its TCP port")
		fs.StringVar(&o.proxyProtocol, "proxy-protocol", "", "send a PROXY protocol header (`VERSION`: v1 or v2) so the server sees the client's address")
		c.Complete("proxy-protocol", "v1 v2")
		c.Duration(&o.connIdle, "conn-idle-timeout", 0, "close a connection after this long without data either way (0: never)")
		c.Duration(&o.keepAlive, "keepalive", 0, "TCP keepalive probes after this long idle, on both sides (0: Go's default)")
		fs.StringVar(&o.mode, "mode", "", "how clients reach the server (`MODE`): proxy (bro-proxy relays, the default) or handoff (the server's own bind() gets the host socket; needs Annotation=bro.mode=handoff in the quadlet); default: the quadlet's Annotation=bro.mode")
		c.Complete("mode", "proxy handoff")
		fs.StringVar(&o.allow, "allow", "", "only these clients may connect, besides the container's owner: `LIST` of NAME, uid:N, @GROUP, IP or IP/PREFIX; default: the quadlet's Annotation=bro.allow")
	}
	c.Bool(&o.force, "force", "f", "replace existing units")
	c.Bool(&o.remove, "remove", "", "stop and delete the units bro-activate wrote (and the annotation it added; direct mode also stops NAME.service, which holds the socket)")
	c.Bool(&o.dryRun, "dry-run", "", "print the units instead of writing them")
	c.Bool(&o.user, "user", "", "user units in ~/.config/systemd/user (default unless root)")
	c.Bool(&o.system, "system", "", "system units in /etc/systemd/system (default for root)")
	fs.StringVar(&o.unitDir, "unit-dir", "", "write units into `DIR` instead")
	c.Complete("unit-dir", cli.ValueDirs)
	return c
}

// parseOptions parses flags and the NAME argument in any order
// (bro-activate NAME --force works too). It returns cli.ErrDone after
// --help, --version or --completion.
func parseOptions(args []string, direct bool, stdout io.Writer) (*options, error) {
	o := &options{direct: direct}
	c := newCommand(o, direct)
	c.Stdout = stdout
	if !direct {
		c.Also = []*cli.Command{newCommand(&options{}, true)}
		addSubcommands(c)
	}
	if err := c.Parse(args); err != nil {
		return nil, err
	}
	names := c.Args()
	switch {
	case len(names) != 1:
		return nil, fmt.Errorf("want exactly one NAME (a quadlet NAME.container), got %d (see %s --help)", len(names), c.Name)
	case o.user && o.system:
		return nil, errors.New("invalid options: --user and --system exclude each other")
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

// addSubcommands tells completion about bro-activate's subcommands.
func addSubcommands(c *cli.Command) {
	d := newCommand(&options{}, true)
	d.Name = "bro-activate direct"
	c.Sub(d)
	s := newStatusCommand(new(statusOptions))
	c.Sub(s)
	comp := cli.New("bro-activate completion", "SHELL", "Print a completion script for SHELL (bash, zsh or fish).", "")
	comp.Operands = "shells"
	c.Sub(comp)
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
