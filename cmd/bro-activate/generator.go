package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/quadlet"
	"github.com/brothaman/brothaman-go/pkg/timespan"
	"github.com/brothaman/brothaman-go/pkg/units"
)

// runGenerator is bro-generator NORMAL_DIR [EARLY_DIR LATE_DIR]. It exits 0
// whatever a quadlet holds: a generator's failure is reported for the whole
// daemon-reload, so one bad quadlet is logged (stderr reaches the journal or
// kmsg) and skipped.
func runGenerator(argv0 string, args []string) int {
	c := cli.New("bro-generator", "NORMAL_DIR [EARLY_DIR LATE_DIR]",
		"A systemd generator (systemd.generator(7)), run by systemd at every daemon-reload:\n"+
			"writes the activator units of every quadlet with Annotation=bro.activate=… into\n"+
			"NORMAL_DIR. One bad quadlet is logged and skipped.", "")
	if err := c.Parse(args); errors.Is(err, cli.ErrDone) {
		return 0
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "bro-generator: %v\n", err)
		return 2
	}
	args = c.Args()
	if len(args) < 1 || len(args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: bro-generator NORMAL_DIR [EARLY_DIR LATE_DIR] (run by systemd at daemon-reload)")
		return 2
	}
	user := generatorIsUser(argv0, os.Getenv("SYSTEMD_SCOPE"))
	env := quadlet.EnvFromProcess()
	env.Rootless = user
	generate(args[0], env.Dirs(), unitDir(user), defaultProxy(), os.Stderr)
	return 0
}

// generatorIsUser tells a user generator from a system one: systemd 251 and
// later say so in $SYSTEMD_SCOPE; older ones only by the directory the link
// was run from.
func generatorIsUser(argv0, scope string) bool {
	switch scope {
	case "user":
		return true
	case "system":
		return false
	}
	return strings.Contains(argv0, "user-generators") || os.Getuid() != 0
}

// generate writes NAME-activator.socket/.service into out for every quadlet
// in dirs with a bro.activate annotation, and links each socket into
// sockets.target.wants so it listens at once. Quadlets whose direct-mode
// socket bro-activate-direct wrote into adminDir are skipped: both would
// listen on the same port.
func generate(out string, dirs []string, adminDir, proxy string, log io.Writer) {
	found := quadlet.FindAll(dirs)
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := generateOne(out, name, found[name], dirs, adminDir, proxy); err != nil {
			fmt.Fprintf(log, "bro-generator: skipping %s: %v\n", found[name], err)
		}
	}
}

func generateOne(out, name, path string, dirs []string, adminDir, proxy string) error {
	if quadlet.ValidateName(name) != nil {
		return nil // quadlet itself rejects or ignores it; not ours to judge
	}
	c, err := quadlet.Load(path, dirs)
	if err != nil {
		return err
	}
	value, ok := c.Annotation(annotation.Key)
	if !ok {
		return nil
	}
	ports, err := annotation.ParsePorts(value)
	if err != nil {
		return err
	}
	if ours, _ := units.Ours(adminDir, []string{name + ".socket"}); len(ours) > 0 {
		return fmt.Errorf("%s is in direct mode (%s)", name, ours[0])
	}
	idle, err := idleStopAnnotation(c)
	if err != nil {
		return err
	}
	mode, err := quadletMode(c, "")
	if err != nil {
		return err
	}
	if mode == annotation.ModeDirect {
		return fmt.Errorf("%s=%s: direct mode has no generator route; run bro-activate-direct %s", annotation.ModeKey, mode, name)
	}
	allowed, err := allowList(c, "", mode, "", io.Discard)
	if err != nil {
		return err
	}
	a := units.Activator{Name: name, ContainerName: c.ContainerName, Ports: ports,
		Proxy: proxy, SourcePath: path, Generated: true, AfterReady: c.NotifiesReady(), IdleStop: idle,
		Handoff: mode == annotation.ModeHandoff, Allow: allowed}
	files, err := a.Files()
	if err != nil {
		return err
	}
	if err := units.Write(out, files, true); err != nil {
		return err
	}
	wants := filepath.Join(out, "sockets.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("link %s: %w", a.Unit()+".socket", err)
	}
	sockets := []string{a.Unit() + ".socket"}
	if a.Handoff {
		sockets = append(sockets, a.AgentSocket())
	}
	for _, s := range sockets {
		link := filepath.Join(wants, s)
		os.Remove(link) // a rerun into the same directory (by hand) replaces it
		if err := os.Symlink(filepath.Join(out, s), link); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
	}
	return nil
}

// IdleStopKey is the annotation that gives a quadlet an idle stop without
// bro-activate's --idle-stop, for the generator route.
const IdleStopKey = "bro.idle-stop"

// idleStopAnnotation reads Annotation=bro.idle-stop=DURATION (0 if unset).
func idleStopAnnotation(c *quadlet.Container) (time.Duration, error) {
	v, ok := c.Annotation(IdleStopKey)
	if !ok {
		return 0, nil
	}
	d, err := timespan.Parse(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid %s=%q in %s: want a systemd time span greater than 0, such as 90s, 5min or 1h30min", IdleStopKey, v, c.Path)
	}
	return d, nil
}
