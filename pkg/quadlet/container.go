package quadlet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Ext is the file extension of the quadlets bro-activate reads.
const Ext = ".container"

// ErrNotFound is returned when no NAME.container is in any search directory.
var ErrNotFound = errors.New("quadlet not found")

// Container is what bro-activate needs from NAME.container and its drop-ins,
// or from NAME.kube and its YAML (kube.go).
type Container struct {
	Name string // NAME: quadlet makes NAME.service of it
	Path string // the NAME.container (or NAME.kube) file read
	// ContainerName= with specifiers resolved, default systemd-NAME; for a
	// .kube quadlet NAME.service, the unit every container of its pod runs
	// in, which their records name (bro-proxy --container matches units).
	ContainerName string
	Annotations   map[string]string // Annotation= key=value words, last wins; a .kube's pod annotations
	File          *File             // the merged file, drop-ins applied
	Kube          string            // a .kube quadlet's Yaml= file; "" for a .container
}

// NotifiesReady reports whether the container tells systemd when it is
// ready (Notify=true or Notify=healthy): then NAME.service turns active when
// the server is ready, not when its process starts, and an activator may be
// ordered after it.
func (c *Container) NotifiesReady() bool {
	if c.File == nil {
		return false
	}
	v, _ := c.File.Lookup("Container", "Notify")
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on", "healthy":
		return true
	}
	return false
}

// Annotation returns the value of annotation key and whether it is set.
func (c *Container) Annotation(key string) (string, bool) {
	v, ok := c.Annotations[key]
	return v, ok
}

// Find returns the path of NAME.container, else NAME.kube, in the first of
// dirs holding it. It returns an error wrapping ErrNotFound that lists the
// directories searched when there is none, and a *NameError for an unsafe
// name.
func Find(name string, dirs []string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	for _, d := range dirs {
		for _, ext := range []string{Ext, KubeExt} {
			p := filepath.Join(d, name+ext)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("find %s%s in %s: %w", name, Ext, strings.Join(dirs, ", "), ErrNotFound)
}

// FindAll returns every *.container and *.kube in dirs, by name; the first
// directory holding a name wins, as in quadlet, and in one directory
// NAME.container wins over NAME.kube. Unreadable directories are skipped.
func FindAll(dirs []string) map[string]string {
	found := make(map[string]string)
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		here := make(map[string]string)
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			for _, ext := range []string{Ext, KubeExt} {
				name, ok := strings.CutSuffix(e.Name(), ext)
				if !ok || found[name] != "" || (ext == KubeExt && here[name] != "") {
					continue
				}
				here[name] = filepath.Join(d, e.Name())
			}
		}
		for name, p := range here {
			found[name] = p
		}
	}
	return found
}

// Load reads the quadlet at path and the drop-ins quadlet would apply to it
// from dirs, and extracts what bro-activate needs. It returns an error naming
// the file for unreadable, oversized or malformed files, and for a
// ContainerName= that cannot be resolved to a Podman container name.
func Load(path string, dirs []string) (*Container, error) {
	if strings.HasSuffix(path, KubeExt) {
		return loadKube(path, dirs)
	}
	name := strings.TrimSuffix(filepath.Base(path), Ext)
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, p := range dropins(name, Ext, dirs) {
		d, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		f.Merge(d)
	}
	c := &Container{Name: name, Path: path, File: f}
	c.Annotations, _ = f.KeyValues("Container", "Annotation")
	raw, ok := f.Lookup("Container", "ContainerName")
	if !ok || raw == "" {
		raw = "systemd-%N" // quadlet's default
	}
	if c.ContainerName, err = resolveContainerName(raw, name); err != nil {
		return nil, fmt.Errorf("read quadlet %s: %w", path, err)
	}
	return c, nil
}

// ReadFile reads and parses one unit file, at most MaxFileSize bytes.
func ReadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read quadlet %s: %w", path, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read quadlet %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse quadlet %s: %w", path, err)
	}
	return f, nil
}

// dropins lists the *.conf drop-ins quadlet v5 applies to NAME.container
// (ext, or NAME.kube), in the order they apply: from container.d/ over the
// dash-truncated prefixes (a-b-c.container reads a-.container.d and
// a-b-.container.d) to NAME.container.d/, one file per name (the most
// specific directory, then the first search directory, wins), sorted by
// file name.
func dropins(name, ext string, dirs []string) []string {
	specific := []string{name + ext + ".d"}
	parts := strings.Split(name, "-")
	for i := len(parts) - 1; i >= 1; i-- {
		specific = append(specific, strings.Join(parts[:i], "-")+"-"+ext+".d")
	}
	specific = append(specific, strings.TrimPrefix(ext, ".")+".d")
	byName := make(map[string]string)
	for _, sub := range specific {
		for _, d := range dirs {
			entries, _ := os.ReadDir(filepath.Join(d, sub)) // missing or unreadable: none
			for _, e := range entries {
				if filepath.Ext(e.Name()) == ".conf" && byName[e.Name()] == "" {
					byName[e.Name()] = filepath.Join(d, sub, e.Name())
				}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = byName[n]
	}
	return paths
}

// containerNameRE is Podman's rule for container names.
var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// resolveContainerName expands the systemd specifiers quadlet leaves in
// ContainerName= for NAME.service to expand. bro-proxy runs in another unit,
// where %N would name the activator, so they are resolved here.
func resolveContainerName(raw, name string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			b.WriteByte(raw[i])
			continue
		}
		if i+1 == len(raw) {
			return "", fmt.Errorf("ContainerName=%q: ends in a lone %%; want a Podman name or the specifiers %%N %%n %%p %%%%", raw)
		}
		i++
		switch raw[i] {
		case 'N', 'p':
			b.WriteString(name)
		case 'n':
			b.WriteString(name + ".service")
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("ContainerName=%q: specifier %%%c is not supported; want a Podman name or the specifiers %%N %%n %%p %%%%", raw, raw[i])
		}
	}
	s := b.String()
	if !containerNameRE.MatchString(s) {
		return "", fmt.Errorf("ContainerName=%q: %q is not a Podman container name; want [a-zA-Z0-9][a-zA-Z0-9_.-]*", raw, s)
	}
	return s, nil
}
