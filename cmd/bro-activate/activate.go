package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/quadlet"
	"github.com/brothaman/brothaman-go/pkg/units"
)

// unitSet is what both modes write: the files, their names for --remove, and
// the units to stop and enable.
type unitSet interface {
	Files() ([]units.File, error)
	Paths() []string
}

func runActivate(args []string, direct bool) int {
	cmd := "bro-activate"
	if direct {
		cmd = "bro-activate-direct"
	}
	o, err := parseOptions(args, direct, os.Stdout)
	if errors.Is(err, cli.ErrDone) {
		return 0
	}
	if err != nil {
		return fail(cmd, err)
	}
	if err := activate(o, os.Stdout, os.Stderr); err != nil {
		return fail(cmd, err)
	}
	return 0
}

func activate(o *options, stdout, stderr io.Writer) error {
	if err := quadlet.ValidateName(o.name); err != nil {
		return err
	}
	env := quadlet.EnvFromProcess()
	env.Rootless = o.user
	dirs := env.Dirs()
	sc := systemctl{user: o.user, stderr: stderr, exec: o.systemctl}
	if o.remove {
		return remove(o, dirs, sc, stdout)
	}
	path, err := quadlet.Find(o.name, dirs)
	if err != nil {
		return err
	}
	c, err := quadlet.Load(path, dirs)
	if err != nil {
		return err
	}
	if c.Kube != "" && o.direct {
		return fmt.Errorf("%s: direct mode is not supported for a .kube quadlet; use bro-activate %s", c.Path, o.name)
	}
	ports, addAnnotation, err := choosePorts(o, c, stderr)
	if err != nil {
		return err
	}
	if addAnnotation && c.Kube != "" {
		return fmt.Errorf("%s: the pod in %s has no %s annotation; add it to the pod's metadata.annotations (Podman passes them to the containers)", c.Path, c.Kube, annotation.Key)
	}
	if _, err := idleStopAnnotation(c); err != nil && !o.direct {
		return err
	}
	mode := annotation.ModeProxy
	if !o.direct {
		if mode, err = quadletMode(c, o.mode); err != nil {
			return err
		}
		if mode == annotation.ModeDirect {
			return fmt.Errorf("%s has Annotation=%s=%s: use bro-activate-direct %s", c.Path, annotation.ModeKey, mode, o.name)
		}
		if mode == annotation.ModeHandoff && !o.dryRun {
			v, err := podmanRuntimeVersion()
			if err != nil {
				return fmt.Errorf("bro.mode=handoff: cannot check the OCI runtime: %w", err)
			}
			if err := checkHandoffRuntime(v); err != nil {
				return err
			}
		}
	}
	var allowed allow.List
	if o.direct {
		err = refuseAllowDirect(c)
	} else {
		allowed, err = allowList(c, o.allow, mode, c.Path+": ", stderr)
	}
	if err != nil {
		return err
	}
	set, socket := unitsFor(o, c, ports, mode == annotation.ModeHandoff)
	if a, ok := set.(units.Activator); ok {
		a.Allow = allowed
		set = a
	}
	files, err := set.Files()
	if err != nil {
		return err
	}
	if o.dryRun {
		for _, f := range files {
			fmt.Fprintf(stdout, "# %s\n%s\n", filepath.Join(o.unitDir, f.Path), f.Data)
		}
		if addAnnotation {
			fmt.Fprintf(stdout, "# %s: would add\n%s\nAnnotation=%s\n", path, quadlet.AddedMarker, quadlet.AnnotationWord(annotation.Key, annotation.SpacedPorts(ports)))
		}
		return nil
	}
	if err := units.Write(o.unitDir, files, o.force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w (use --force to replace, --remove to delete)", err)
		}
		return err
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(o.unitDir, f.Path))
	}
	if o.force {
		// a file of the units replaced that the new ones no longer have
		// (the idle-stop drop-in after --force without --idle-stop)
		if stale, err := units.Remove(o.unitDir, stalePaths(set.Paths(), files)); err != nil {
			return err
		} else {
			for _, p := range stale {
				fmt.Fprintf(stdout, "removed %s\n", p)
			}
		}
	}
	if addAnnotation {
		// spaces, not commas: Podman 4.3 cuts an annotation at its commas
		if err := quadlet.AddAnnotation(path, annotation.Key, annotation.SpacedPorts(ports)); err != nil {
			// Leave nothing half-done: the units without the annotation
			// would start a proxy that never finds its container.
			units.Remove(o.unitDir, set.Paths())
			return err
		}
		fmt.Fprintf(stdout, "added Annotation=%s to %s\n", quadlet.AnnotationWord(annotation.Key, annotation.SpacedPorts(ports)), path)
	}
	fmt.Fprintf(stdout, "next: %s && %s\n", sc.command("daemon-reload"), sc.command("enable", "--now", socket))
	return nil
}

// choosePorts takes the ports from the flags, else from the annotation, and
// reports whether the annotation must be added to the quadlet (it is missing
// and the OCI hook needs it to record the container for bro-proxy).
func choosePorts(o *options, c *quadlet.Container, stderr io.Writer) ([]annotation.Port, bool, error) {
	value, annotated := c.Annotation(annotation.Key)
	if len(o.listens) == 0 && len(o.targets) == 0 {
		if !annotated {
			return nil, false, fmt.Errorf("no ports for %s: it has no Annotation=%s=… and no --listen or --target was given", c.Path, annotation.Key)
		}
		ports, err := annotation.ParsePorts(value)
		if err != nil {
			return nil, false, fmt.Errorf("read ports of %s: %w", c.Path, err)
		}
		return ports, false, nil
	}
	ports, err := portsFromFlags(o.listens, o.targets)
	if err != nil {
		return nil, false, err
	}
	if annotated && value != annotation.FormatPorts(ports) && !o.direct {
		fmt.Fprintf(stderr, "warning: %s has Annotation=%s=%s; the units use the flags' %s\n", c.Path, annotation.Key, value, annotation.FormatPorts(ports))
	}
	return ports, !annotated && !o.direct, nil
}

func unitsFor(o *options, c *quadlet.Container, ports []annotation.Port, handoff bool) (unitSet, string) {
	if o.direct {
		return units.Direct{Name: o.name, Ports: ports, SourcePath: c.Path}, o.name + ".socket"
	}
	idle := o.idleStop
	if idle == 0 {
		// the quadlet's own Annotation=bro.idle-stop=…, checked by the caller
		idle, _ = idleStopAnnotation(c)
	}
	a := units.Activator{Name: o.name, Suffix: o.suffix, ContainerName: c.ContainerName, Ports: ports,
		Proxy: o.proxy, ConnectionsMax: o.connectionsMax, IdleStop: idle, SourcePath: c.Path,
		AfterReady: c.NotifiesReady(), UnixListen: o.unixListen, SocketMode: o.socketMode,
		SocketGroup: o.socketGroup, UnixTarget: o.unixTarget, ProxyProtocol: o.proxyProtocol,
		ConnIdleTimeout: o.connIdle, KeepAlive: o.keepAlive, Handoff: handoff}
	return a, a.Unit() + ".socket"
}

// remove stops and deletes what bro-activate wrote for NAME, and the
// annotation it added. The quadlet may be gone already; that is no error.
func remove(o *options, dirs []string, sc systemctl, stdout io.Writer) error {
	var set unitSet
	var stop []string
	if o.direct {
		// The container holds the listening socket it inherited: the port
		// stays open until NAME.service stops too.
		set, stop = units.Direct{Name: o.name}, []string{o.name + ".socket", o.name + ".service"}
	} else {
		a := units.Activator{Name: o.name, Suffix: o.suffix}
		set, stop = a, []string{a.Unit() + ".socket", a.Unit() + ".service"}
		if ours, _ := units.Ours(o.unitDir, []string{a.AgentSocket()}); len(ours) > 0 {
			stop = append(stop, a.AgentSocket())
		}
	}
	if o.dryRun {
		for _, p := range set.Paths() {
			fmt.Fprintf(stdout, "would remove %s\n", filepath.Join(o.unitDir, p))
		}
		return nil
	}
	// Refuse before stopping anything if a file is not ours.
	if _, err := units.Ours(o.unitDir, set.Paths()); err != nil {
		return err
	}
	sc.run(append([]string{"disable", "--now"}, stop[0])...)
	if len(stop) > 1 {
		sc.run(append([]string{"stop"}, stop[1:]...)...)
	}
	removed, err := units.Remove(o.unitDir, set.Paths())
	for _, p := range removed {
		fmt.Fprintf(stdout, "removed %s\n", p)
	}
	if err != nil {
		return err
	}
	// Another activator (--service-name) may still need the annotation;
	// only the default one takes it away again.
	if !o.direct && o.suffix == units.DefaultSuffix {
		if path, err := quadlet.Find(o.name, dirs); err == nil {
			if ok, err := quadlet.RemoveAnnotation(path); err != nil {
				return err
			} else if ok {
				fmt.Fprintf(stdout, "removed the annotation bro-activate added to %s\n", path)
			}
		}
	}
	if len(removed) == 0 {
		fmt.Fprintf(stdout, "nothing to remove for %s in %s\n", o.name, o.unitDir)
	}
	sc.run("daemon-reload")
	return nil
}

// stalePaths lists the paths a unit set may write that files do not hold.
func stalePaths(all []string, files []units.File) []string {
	keep := make(map[string]bool, len(files))
	for _, f := range files {
		keep[f.Path] = true
	}
	var stale []string
	for _, p := range all {
		if !keep[p] {
			stale = append(stale, p)
		}
	}
	return stale
}
