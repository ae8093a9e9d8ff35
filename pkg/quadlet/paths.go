package quadlet

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The system directories quadlet reads (Podman v5 pkg/systemd/quadlet).
const (
	dirTemp   = "/run/containers/systemd"
	dirAdmin  = "/etc/containers/systemd"
	dirDistro = "/usr/share/containers/systemd"
)

// Env is what decides where quadlets are looked up. EnvFromProcess fills it
// from the running process; tests set Root to a temporary directory.
type Env struct {
	Rootless   bool
	UID        int
	ConfigHome string // $XDG_CONFIG_HOME, or ~/.config
	RuntimeDir string // $XDG_RUNTIME_DIR, may be empty
	UnitDirs   string // $QUADLET_UNIT_DIRS: replaces every other directory
	Root       string // prefix for the system directories; "" outside tests
}

// EnvFromProcess describes the running process: rootless unless uid 0.
func EnvFromProcess() Env {
	e := Env{
		Rootless:   os.Getuid() != 0,
		UID:        os.Getuid(),
		RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"),
		UnitDirs:   os.Getenv("QUADLET_UNIT_DIRS"),
	}
	e.ConfigHome, _ = os.UserConfigDir() // "" when neither XDG_CONFIG_HOME nor HOME is set
	return e
}

// Dirs returns the directories quadlet reads, in precedence order (the first
// NAME.container found wins), each followed by its subdirectories as quadlet
// v5 walks them: rootless reads $XDG_RUNTIME_DIR/containers/systemd,
// $XDG_CONFIG_HOME/containers/systemd, /etc/containers/systemd/users (without
// its numeric per-uid subdirectories) and /etc/containers/systemd/users/UID;
// root reads /run/containers/systemd, /etc/containers/systemd (without users/)
// and /usr/share/containers/systemd. Directories named *.d are drop-ins, not
// walked. Missing directories are listed too: they cost nothing to look in.
func (e Env) Dirs() []string {
	w := &walker{seen: make(map[string]bool)}
	if e.UnitDirs != "" {
		for _, d := range strings.Split(e.UnitDirs, ":") {
			if filepath.IsAbs(d) {
				w.walk(d, nil)
			}
		}
		return w.dirs
	}
	users := filepath.Join(e.Root, dirAdmin, "users")
	if !e.Rootless {
		notUsers := func(p string) bool { return !within(p, users) }
		w.walk(filepath.Join(e.Root, dirTemp), notUsers)
		w.walk(filepath.Join(e.Root, dirAdmin), notUsers)
		w.walk(filepath.Join(e.Root, dirDistro), nil)
		return w.dirs
	}
	if e.RuntimeDir != "" {
		w.walk(filepath.Join(e.RuntimeDir, "containers/systemd"), nil)
	}
	if e.ConfigHome != "" {
		w.walk(filepath.Join(e.ConfigHome, "containers/systemd"), nil)
	}
	// users/ holds files for every user, users/UID for one; other users'
	// numeric directories are theirs alone.
	numeric := regexp.MustCompile(`^[0-9]+$`)
	w.walk(users, func(p string) bool {
		rel, err := filepath.Rel(users, p)
		first, _, _ := strings.Cut(rel, string(filepath.Separator))
		return err == nil && (rel == "." || !numeric.MatchString(first))
	})
	w.walk(filepath.Join(users, strconv.Itoa(e.UID)), nil)
	return w.dirs
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

type walker struct {
	dirs []string
	seen map[string]bool // resolved paths, so symlink loops end
}

// walk adds dir and, recursively, its subdirectories that keep passes.
func (w *walker) walk(dir string, keep func(string) bool) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if !w.seen[dir] {
			w.seen[dir] = true
			w.dirs = append(w.dirs, dir)
		}
		return
	}
	if w.seen[resolved] || strings.HasSuffix(resolved, ".d") || (keep != nil && !keep(resolved)) {
		return
	}
	if fi, err := os.Stat(resolved); err != nil || !fi.IsDir() {
		return
	}
	w.seen[resolved] = true
	w.dirs = append(w.dirs, resolved)
	entries, _ := os.ReadDir(resolved) // unreadable: nothing below it, as in quadlet
	for _, ent := range entries {
		w.walk(filepath.Join(resolved, ent.Name()), keep)
	}
}
