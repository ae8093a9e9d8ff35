package fdpass

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ListenFDsStart is the first inherited descriptor (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS; systemd itself passes at most a few hundred.
const maxListenFDs = 1024

// ErrNoListenFDs is returned when the environment passes no sockets.
var ErrNoListenFDs = errors.New("no sockets inherited (LISTEN_FDS is unset or 0; run under a systemd .socket unit or systemd-socket-activate)")

// Inherited is one descriptor passed by the service manager.
type Inherited struct {
	File *os.File
	Name string // from LISTEN_FDNAMES; systemd's default is the socket unit's name
}

// Environ is the part of the environment sd_listen_fds(3) reads.
type Environ struct {
	PID     string // LISTEN_PID
	FDs     string // LISTEN_FDS
	FDNames string // LISTEN_FDNAMES
}

// EnvironFromOS reads the three variables.
func EnvironFromOS() Environ {
	return Environ{PID: os.Getenv("LISTEN_PID"), FDs: os.Getenv("LISTEN_FDS"), FDNames: os.Getenv("LISTEN_FDNAMES")}
}

// Parse validates e for the process pid and returns the number of descriptors
// and their names (len(names) == n; missing names are "unknown", as systemd
// does). It returns ErrNoListenFDs for no descriptors and an error naming the
// variable and its value for a LISTEN_PID of another process, a malformed
// count, or a count of names that does not match.
func (e Environ) Parse(pid int) (n int, names []string, err error) {
	if e.FDs == "" || e.FDs == "0" {
		return 0, nil, ErrNoListenFDs
	}
	if e.PID == "" {
		return 0, nil, fmt.Errorf("LISTEN_FDS=%s but LISTEN_PID is unset; want LISTEN_PID=%d", e.FDs, pid)
	}
	if p, err := strconv.Atoi(e.PID); err != nil || p != pid {
		return 0, nil, fmt.Errorf("LISTEN_PID=%s is not this process (pid %d): the sockets were meant for another process", e.PID, pid)
	}
	n, err = strconv.Atoi(e.FDs)
	if err != nil || n < 0 || n > maxListenFDs {
		return 0, nil, fmt.Errorf("LISTEN_FDS=%q: want a number of descriptors in 0-%d", e.FDs, maxListenFDs)
	}
	if n == 0 { // "00", "+0", "-0": no descriptors, as for "0"
		return 0, nil, ErrNoListenFDs
	}
	names = make([]string, n)
	for i := range names {
		names[i] = "unknown"
	}
	if e.FDNames != "" {
		given := strings.Split(e.FDNames, ":")
		if len(given) != n {
			return 0, nil, fmt.Errorf("LISTEN_FDNAMES=%q has %d names for LISTEN_FDS=%d descriptors", e.FDNames, len(given), n)
		}
		copy(names, given)
	}
	return n, names, nil
}

// Listen returns the descriptors passed to this process and unsets the
// variables so that children do not inherit them by mistake. Each descriptor
// is marked close-on-exec. Errors are those of Environ.Parse.
func Listen() ([]Inherited, error) {
	n, names, err := EnvironFromOS().Parse(os.Getpid())
	if err != nil {
		return nil, err
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	out := make([]Inherited, n)
	for i := 0; i < n; i++ {
		fd := ListenFDsStart + i
		syscall.CloseOnExec(fd)
		out[i] = Inherited{File: os.NewFile(uintptr(fd), names[i]), Name: names[i]}
	}
	return out, nil
}
