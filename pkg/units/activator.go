package units

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/annotation"
)

// SuffixRule is the rule for --service-name, quoted in its error.
const SuffixRule = "1-32 characters of a-z A-Z 0-9 _ -"

var (
	suffixRE     = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,32}$`)
	socketModeRE = regexp.MustCompile(`^0?[0-7]{3}$`)
	groupRE      = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,31}$`)
)

// Activator describes NAME-SUFFIX.socket and NAME-SUFFIX.service: a socket
// on the host and bro-proxy carrying its connections into the container of
// NAME.service.
type Activator struct {
	Name           string
	Suffix         string // "" is DefaultSuffix
	ContainerName  string // Podman's name of the container, for bro-proxy --container
	Ports          []annotation.Port
	Proxy          string        // absolute path of bro-proxy
	ConnectionsMax int           // 0 is DefaultConnectionsMax
	IdleStop       time.Duration // 0: bro-proxy never exits idle, the container keeps running
	// AfterReady binds the activator to NAME.service and orders it after:
	// set when the quadlet has Notify=, so the unit turns active when the
	// server is ready (PostgreSQL accepts connections before it is).
	AfterReady bool
	// UnixListen adds a unix stream socket on the host (ListenStream=PATH),
	// with SocketMode (default 0660) and SocketGroup: cross-user access by
	// file permissions instead of a TCP port.
	UnixListen, SocketMode, SocketGroup string
	// UnixTarget, if set, is the unix socket inside the container that
	// every listener leads to (PostgreSQL's /run/postgresql/.s.PGSQL.5432),
	// resolved in the container's own filesystem.
	UnixTarget string
	// ProxyProtocol ("v1", "v2" or ""), ConnIdleTimeout and KeepAlive are
	// passed to bro-proxy as --proxy-protocol, --idle-timeout, --keepalive.
	ProxyProtocol              string
	ConnIdleTimeout, KeepAlive time.Duration
	SourcePath                 string
	Generated                  bool
	// Allow, if set, lets only the container's owner and these clients
	// connect (bro-proxy --allow). The activator then pulls nothing in:
	// bro-proxy starts NAME.service for the first client it lets in.
	Allow allow.List
	// Handoff renders the handoff mode instead of the proxy: bro-proxy
	// --handoff holds the host sockets and gives them to the container's own
	// bind() through its seccomp listener, at AgentSocket(); nothing relays.
	Handoff bool
}

func (a Activator) common() common {
	return common{Name: a.Name, Ports: a.Ports, SourcePath: a.SourcePath, Generated: a.Generated}
}

// Marker, HasTCP: see common; promoted by hand because the templates get an
// Activator.
func (a Activator) Marker() string { return a.common().Marker() }
func (a Activator) HasTCP() bool   { return a.common().HasTCP() }

// Unit is the base name of the activator units, NAME-SUFFIX.
func (a Activator) Unit() string {
	if a.Suffix == "" {
		return a.Name + "-" + DefaultSuffix
	}
	return a.Name + "-" + a.Suffix
}

// Listeners is how many sockets the socket unit holds.
func (a Activator) Listeners() int {
	n := len(a.Ports)
	if a.UnixListen != "" {
		n++
	}
	return n
}

// Mode is SocketMode= of the unix listener.
func (a Activator) Mode() string {
	if a.SocketMode == "" {
		return "0660"
	}
	return a.SocketMode
}

// Backlog is the socket's accept queue: as long as bro-proxy's connection
// limit, so clients beyond it wait in the kernel rather than being refused.
func (a Activator) Backlog() int { return a.connectionsMax() }

func (a Activator) connectionsMax() int {
	if a.ConnectionsMax <= 0 {
		return DefaultConnectionsMax
	}
	return a.ConnectionsMax
}

// RemoveCommand is what the header tells the user to run.
func (a Activator) RemoveCommand() string {
	if a.Suffix != "" && a.Suffix != DefaultSuffix {
		return "bro-activate --remove --service-name " + a.Suffix + " " + a.Name
	}
	return "bro-activate --remove " + a.Name
}

// ExecStart is the bro-proxy command line: one --target per port, positional,
// in the order the socket unit lists (and systemd passes) the fds.
func (a Activator) ExecStart() string {
	args := []string{a.Proxy, "--container", a.ContainerName, "--start-unit", a.Name + ".service",
		"--connections-max", fmt.Sprint(a.connectionsMax())}
	if a.IdleStop > 0 {
		args = append(args, "--exit-idle-time", Seconds(a.IdleStop))
	}
	if a.ProxyProtocol != "" {
		args = append(args, "--proxy-protocol", a.ProxyProtocol)
	}
	if a.ConnIdleTimeout > 0 {
		args = append(args, "--idle-timeout", Seconds(a.ConnIdleTimeout))
	}
	if a.KeepAlive > 0 {
		args = append(args, "--keepalive", Seconds(a.KeepAlive))
	}
	if len(a.Allow) > 0 {
		args = append(args, "--allow", a.Allow.String())
		if a.AfterReady {
			// not ordered after NAME.service (that would start it): bro-proxy
			// holds the clients it lets in until the unit is active instead
			args = append(args, "--wait-ready")
		}
	}
	for _, p := range a.Ports {
		if a.UnixTarget != "" && p.Proto == "tcp" {
			args = append(args, "--target", a.UnixTarget)
		} else {
			args = append(args, "--target", p.Target())
		}
	}
	if a.UnixListen != "" {
		t := a.UnixTarget
		if t == "" {
			t = a.Ports[0].Target()
		}
		args = append(args, "--target", t)
	}
	for i, s := range args {
		args[i] = execArg(s)
	}
	return strings.Join(args, " ")
}

// IdleStopConf is the path of the drop-in that lets NAME.service stop with
// the activator; named after the activator so two activators do not clash.
func (a Activator) IdleStopConf() string {
	return filepath.Join(a.Name+".service.d", "50-"+a.Unit()+"-idle-stop.conf")
}

// StartLimitConf is the path of the drop-in that lifts NAME.service's start
// limit, so that a container that crash-looped starts again once fixed.
func (a Activator) StartLimitConf() string {
	return filepath.Join(a.Name+".service.d", "50-"+a.Unit()+"-start-limit.conf")
}

// AgentSocket is the socket unit at the containers' listenerPath
// (handoff.ListenerPath), where runc sends each container's seccomp listener.
func (a Activator) AgentSocket() string { return a.Unit() + "-seccomp.socket" }

// ListenerPath is that socket's path, as systemd expands it: the user's
// state directory (%t/bro) holds it, as the hook computes it.
func (a Activator) ListenerPath() string { return "%t/bro/handoff/" + a.Name + ".sock" }

// HandoffConf is the drop-in that makes NAME.service wait for the agent's
// socket: without a listener at listenerPath runc refuses to create the
// container.
func (a Activator) HandoffConf() string {
	return filepath.Join(a.Name+".service.d", "50-"+a.Unit()+"-handoff.conf")
}

// FlushPending: the socket closes its queue when the activator stops or
// fails to start (see the socket template).
func (a Activator) FlushPending() bool { return a.AfterReady || a.Handoff }

// Paths lists every file Files can write, drop-ins included, for Remove.
func (a Activator) Paths() []string {
	return []string{a.Unit() + ".socket", a.Unit() + ".service", a.StartLimitConf(), a.IdleStopConf(),
		a.AgentSocket(), a.HandoffConf()}
}

// HandoffExecStart is the agent's command line.
func (a Activator) HandoffExecStart() string {
	args := []string{a.Proxy, "--handoff", "--start-unit", a.Name + ".service"}
	if a.AfterReady {
		args = append(args, "--wait-ready")
	}
	if a.IdleStop > 0 {
		args = append(args, "--exit-idle-time", Seconds(a.IdleStop))
	}
	for i, s := range args {
		args[i] = execArg(s)
	}
	return strings.Join(args, " ")
}

// Files renders the activator units, the drop-in that lifts NAME.service's
// start limit, and the StopWhenUnneeded= drop-in for NAME.service when
// IdleStop is set. It returns a *quadlet.NameError for a bad
// name and an error naming the value and the rule for a bad suffix, a
// relative proxy path or a missing container name or port.
func (a Activator) Files() ([]File, error) {
	if err := a.common().validate(); err != nil {
		return nil, err
	}
	if a.Suffix != "" && !suffixRE.MatchString(a.Suffix) {
		return nil, fmt.Errorf("invalid service name suffix %q: want %s", a.Suffix, SuffixRule)
	}
	if !filepath.IsAbs(a.Proxy) {
		return nil, fmt.Errorf("invalid bro-proxy path %q: want an absolute path", a.Proxy)
	}
	if a.ContainerName == "" {
		return nil, fmt.Errorf("render units for %s: no container name", a.Name)
	}
	for _, u := range []struct{ flag, path string }{{"--listen-unix", a.UnixListen}, {"--target-unix", a.UnixTarget}} {
		if u.path != "" && (!filepath.IsAbs(u.path) || len(u.path) > 107 || strings.ContainsAny(u.path, " \t\n%\\")) {
			return nil, fmt.Errorf("invalid %s %q: want an absolute path of at most 107 bytes without spaces, %% or backslashes", u.flag, u.path)
		}
	}
	if a.SocketMode != "" && !socketModeRE.MatchString(a.SocketMode) {
		return nil, fmt.Errorf("invalid socket mode %q: want an octal mode such as 0660", a.SocketMode)
	}
	if a.SocketGroup != "" && !groupRE.MatchString(a.SocketGroup) {
		return nil, fmt.Errorf("invalid socket group %q: want a group name or number", a.SocketGroup)
	}
	switch a.ProxyProtocol {
	case "", "v1", "v2":
	default:
		return nil, fmt.Errorf("invalid PROXY protocol %q: want v1 or v2", a.ProxyProtocol)
	}
	kinds := []struct{ path, tmpl string }{
		{a.Unit() + ".socket", "activator.socket.tmpl"},
		{a.Unit() + ".service", "activator.service.tmpl"},
		{a.StartLimitConf(), "activator-start-limit.conf.tmpl"},
	}
	if a.Handoff && len(a.Allow) > 0 {
		return nil, allow.CheckMode(annotation.ModeHandoff)
	}
	if a.Handoff {
		if err := a.handoffValid(); err != nil {
			return nil, err
		}
		kinds[1].tmpl = "handoff.service.tmpl"
		kinds = append(kinds, struct{ path, tmpl string }{a.AgentSocket(), "handoff-seccomp.socket.tmpl"},
			struct{ path, tmpl string }{a.HandoffConf(), "handoff.conf.tmpl"})
	}
	if a.IdleStop > 0 {
		t := "idle-stop.conf.tmpl"
		if len(a.Allow) > 0 {
			t = "allow-idle-stop.conf.tmpl" // same path: --remove and --force find it
		}
		kinds = append(kinds, struct{ path, tmpl string }{a.IdleStopConf(), t})
	}
	var files []File
	for _, k := range kinds {
		data, err := render(k.tmpl, a)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: k.path, Data: data})
	}
	return files, nil
}

// HandoffRule is what the handoff mode serves, quoted in its errors.
const HandoffRule = "the handoff mode gives host TCP and UDP sockets to the server's bind(); it relays nothing"

// handoffValid refuses what only a relay can do.
func (a Activator) handoffValid() error {
	for _, o := range []struct {
		set  bool
		what string
	}{
		{a.UnixListen != "", "--listen-unix " + a.UnixListen},
		{a.UnixTarget != "", "a unix socket target (" + a.UnixTarget + ")"},
		{a.ProxyProtocol != "", "--proxy-protocol " + a.ProxyProtocol + " (the server sees the client's address itself)"},
		{a.ConnIdleTimeout > 0, "--idle-timeout"},
		{a.KeepAlive > 0, "--keepalive"},
	} {
		if o.set {
			return fmt.Errorf("bro.mode=handoff for %s: cannot use %s: %s", a.Name, o.what, HandoffRule)
		}
	}
	for _, p := range a.Ports {
		if p.ContainerPort != p.HostPort {
			return fmt.Errorf("bro.mode=handoff for %s: port %s maps host port %d to container port %d: the server's bind() of port %d receives the host socket, so both must be the same", a.Name, p.Listen(), p.HostPort, p.ContainerPort, p.ContainerPort)
		}
	}
	return nil
}
