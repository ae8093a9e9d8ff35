package record

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// StateDirEnv overrides the state directory (tests; a hook config's env).
const StateDirEnv = "BRO_STATE_DIR"

// HostUID is the uid, in the initial user namespace, of the calling process's
// effective uid. Inside a rootless Podman user namespace the hook runs as uid
// 0 with no environment at all, so the owner must be read from the uid map:
// "0 1001 1" maps 0 to 1001. A process outside any user namespace gets its
// own euid back.
func HostUID() (int, error) {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return -1, fmt.Errorf("read uid map: %w", err)
	}
	return mapUID(data, os.Geteuid())
}

func mapUID(uidMap []byte, uid int) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(uidMap))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 32)
		outside, err2 := strconv.ParseUint(f[1], 10, 32)
		count, err3 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if u := uint64(uid); u >= inside && u < inside+count {
			return int(outside + (u - inside)), nil
		}
	}
	return -1, fmt.Errorf("uid %d is not in the uid map %q", uid, strings.TrimSpace(string(uidMap)))
}

// DefaultStateDir is where records of containers owned by hostUID live:
// /run/bro for root, /run/user/UID/bro for everybody else.
func DefaultStateDir(hostUID int) string {
	if hostUID == 0 {
		return "/run/bro"
	}
	return fmt.Sprintf("/run/user/%d/bro", hostUID)
}

// StateDirPath is $BRO_STATE_DIR if set, else DefaultStateDir of the caller.
func StateDirPath() (string, error) {
	if d := os.Getenv(StateDirEnv); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("%s=%q: want an absolute path", StateDirEnv, d)
		}
		return filepath.Clean(d), nil
	}
	uid, err := HostUID()
	if err != nil {
		return "", err
	}
	return DefaultStateDir(uid), nil
}

// ErrUnsafeStateDir is wrapped by OpenStateDir for a directory that another
// user owns, that others can access, or that is not a directory.
var ErrUnsafeStateDir = errors.New("unsafe state directory")

// StateDir is an open state directory. Every record operation is relative to
// its descriptor, so a path swapped for a symlink after the check is never
// followed.
type StateDir struct {
	Path string
	fd   int
}

// OpenStateDir opens path, creating it with mode 0700 if create is set and it
// is missing. It refuses, wrapping ErrUnsafeStateDir, a symlink, a
// non-directory, a directory owned by another uid and a directory that grants
// group or others any access. It returns an error wrapping fs.ErrNotExist if the
// directory is missing and create is false.
func OpenStateDir(path string, create bool) (*StateDir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdir(path, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create state directory %s: %w", path, err)
		}
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("state directory %s: %w: not a directory (or a symlink)", path, ErrUnsafeStateDir)
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("open state directory %s: %w", path, os.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("open state directory %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat state directory %s: %w", path, err)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		unix.Close(fd)
		return nil, fmt.Errorf("state directory %s: %w: owned by uid %d, not %d", path, ErrUnsafeStateDir, st.Uid, euid)
	}
	if st.Mode&0o077 != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("state directory %s: %w: mode %04o, want 0700", path, ErrUnsafeStateDir, st.Mode&0o7777)
	}
	return &StateDir{Path: path, fd: fd}, nil
}

// Close releases the directory descriptor.
func (d *StateDir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Fd is the directory descriptor, for inotify and *at calls.
func (d *StateDir) Fd() int { return d.fd }
