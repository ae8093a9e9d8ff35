package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/units"
)

// runStatus is `bro-activate status [NAME...]`: every activator (written by
// bro-activate or bro-generator) with its socket, container and bro-proxy
// states and bro-proxy's live counters (its STATUS= line).
type statusOptions struct{ user, system bool }

func newStatusCommand(o *statusOptions) *cli.Command {
	c := cli.New("bro-activate status", "[--user|--system] [NAME...]",
		"List every activator (written by bro-activate or bro-generator) with its socket,\ncontainer and bro-proxy states and bro-proxy's live counters.",
		"bro-activate status\nbro-activate status test-postgresql")
	c.Operands = "quadlets"
	c.Bool(&o.user, "user", "", "the user manager's activators (default unless root)")
	c.Bool(&o.system, "system", "", "the system manager's activators (default for root)")
	return c
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	var o statusOptions
	c := newStatusCommand(&o)
	c.Stdout = stdout
	if err := c.Parse(args); errors.Is(err, cli.ErrDone) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "bro-activate status: %v\n", err)
		return 2
	}
	if o.user && o.system {
		fmt.Fprintln(stderr, "bro-activate status: invalid options: --user and --system exclude each other")
		return 2
	}
	user := os.Geteuid() != 0
	if o.user || o.system {
		user = o.user
	}
	want := make(map[string]bool)
	for _, a := range c.Args() {
		want[a] = true
	}
	dirs := []string{unitDir(user), generatorDir(user)}
	acts := findActivators(dirs)
	if len(want) > 0 {
		var keep []activatorUnits
		for _, a := range acts {
			if want[a.name] {
				keep = append(keep, a)
				delete(want, a.name)
			}
		}
		for name := range want {
			fmt.Fprintf(stderr, "bro-activate: no activator for %s in %s\n", name, strings.Join(dirs, " or "))
			return 1
		}
		acts = keep
	}
	sc := systemctl{user: user}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOCKET\tLISTEN\tCONTAINER\tPROXY\tSTATUS")
	for _, a := range acts {
		props := sc.show(a.socket, a.service, a.container)
		s, p, c := props[a.socket], props[a.service], props[a.container]
		status := p["StatusText"]
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.name, state(s), listen(s["Listen"]), state(c), state(p), status)
	}
	tw.Flush()
	return 0
}

type activatorUnits struct {
	name, socket, service, container string
}

// findActivators reads the activator services in dirs (first dir wins, as
// systemd's search path does) and returns them sorted by name.
func findActivators(dirs []string) []activatorUnits {
	seen := make(map[string]bool)
	var out []activatorUnits
	for _, dir := range dirs {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.service"))
		for _, p := range paths {
			base := filepath.Base(p)
			if seen[base] {
				continue
			}
			container, ok := activatorOf(p)
			if !ok {
				continue
			}
			seen[base] = true
			unit := strings.TrimSuffix(base, ".service")
			out = append(out, activatorUnits{name: strings.TrimSuffix(container, ".service"),
				socket: unit + ".socket", service: base, container: container})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].service < out[j].service })
	return out
}

// activatorOf returns the container unit an activator service starts
// (bro-proxy's --start-unit), if path is an activator we wrote.
func activatorOf(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return "", false
	}
	first := sc.Text()
	if !strings.HasPrefix(first, units.ActivateMarker) && !strings.HasPrefix(first, units.GeneratorMarker) {
		return "", false
	}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "ExecStart=") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--start-unit" {
				return f[i+1], true
			}
		}
	}
	return "", false
}

// show returns selected properties of units, by unit name.
func (s systemctl) show(names ...string) map[string]map[string]string {
	out := make(map[string]map[string]string)
	args := s.args(append([]string{"show", "-p", "Id,ActiveState,SubState,StatusText,Listen"}, names...)...)
	data, err := exec.Command("systemctl", args...).Output()
	if err != nil {
		return out
	}
	for _, block := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		props := make(map[string]string)
		for _, line := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				props[k] = v
			}
		}
		out[props["Id"]] = props
	}
	return out
}

func state(p map[string]string) string {
	if p == nil || p["ActiveState"] == "" {
		return "-"
	}
	if p["SubState"] != "" && p["SubState"] != p["ActiveState"] && p["SubState"] != "dead" {
		return p["ActiveState"] + "/" + p["SubState"]
	}
	return p["ActiveState"]
}

// listen turns "127.0.0.1:5432 (Stream)" into "127.0.0.1:5432/tcp".
func listen(v string) string {
	if v == "" {
		return "-"
	}
	v = strings.Replace(v, " (Stream)", "/tcp", 1)
	return strings.Replace(v, " (Datagram)", "/udp", 1)
}

// generatorDir is where bro-generator (and quadlet) write units.
func generatorDir(user bool) string {
	if !user {
		return "/run/systemd/generator"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "systemd/generator")
	}
	return fmt.Sprintf("/run/user/%d/systemd/generator", os.Getuid())
}
