package record

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"golang.org/x/sys/unix"
)

// Version is the schema version of records written by this package.
const Version = 1

// maxRecordSize bounds what a reader accepts as a record.
const maxRecordSize = 64 << 10

// recordSuffix names record files; temp files start with '.' and never match.
const recordSuffix = ".json"

// Record is what bro-hook knows about a running container; bro-proxy follows it.
type Record struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// Name is the container's name (Podman's --name, quadlet's ContainerName=).
	Name string `json:"name,omitempty"`
	// Unit is the systemd unit whose cgroup holds the container's monitor
	// (quadlet's NAME.service), if any.
	Unit string `json:"unit,omitempty"`
	PID  int    `json:"pid"`
	// PIDStart is field 22 of /proc/PID/stat: with PID it names one process
	// for the life of the system, so a recycled pid is detected.
	PIDStart uint64 `json:"pidStart"`
	NetNS    string `json:"netns"`
	NetNSDev uint64 `json:"netnsDev"`
	NetNSIno uint64 `json:"netnsIno"`
	// UID is the host uid that owns the container (its user namespace).
	UID        int               `json:"uid"`
	Annotation string            `json:"annotation"`
	Ports      []annotation.Port `json:"ports"`
	Created    time.Time         `json:"created"`
}

// Matches reports whether name designates this container: its id, an id
// prefix of at least 12 characters, its name, or its systemd unit with or
// without the ".service" suffix.
func (r *Record) Matches(name string) bool {
	switch {
	case name == "":
		return false
	case name == r.ID, name == r.Name:
		return true
	case len(name) >= 12 && strings.HasPrefix(r.ID, name):
		return true
	case r.Unit != "" && (name == r.Unit || name+".service" == r.Unit):
		return true
	}
	return false
}

// Write stores r as ID.json atomically: a temp file created with O_EXCL and
// O_NOFOLLOW, then renamed over the old record. A reader sees the old record
// or the new one, never part of one.
func (d *StateDir) Write(r *Record) error {
	if !ValidID(r.ID) {
		return fmt.Errorf("write record: invalid container id %q", r.ID)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + r.ID + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create record %s in %s: %w", r.ID, d.Path, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(d.fd, tmp, d.fd, r.ID+recordSuffix)
	}
	if werr != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return fmt.Errorf("write record %s in %s: %w", r.ID, d.Path, werr)
	}
	return nil
}

// Remove deletes the record of id. A missing record is not an error.
func (d *StateDir) Remove(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("remove record: invalid container id %q", id)
	}
	if err := unix.Unlinkat(d.fd, id+recordSuffix, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove record %s from %s: %w", id, d.Path, err)
	}
	return nil
}

// ErrForeign is wrapped by Read for a record file or content that does
// not belong to the caller.
var ErrForeign = errors.New("record does not belong to this user")

// Read loads the record of id. Files that are not regular (a FIFO, a device,
// a symlink), are owned by another uid, are too large or hold a different id
// are refused; a missing record returns an error wrapping os.ErrNotExist.
func (d *StateDir) Read(id string) (*Record, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("read record: invalid container id %q", id)
	}
	return d.readFile(id + recordSuffix)
}

func (d *StateDir) readFile(name string) (*Record, error) {
	// O_NONBLOCK: opening a FIFO planted in place of a record must not block.
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("read record %s/%s: %w", d.Path, name, os.ErrNotExist)
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("read record %s/%s: is a symlink", d.Path, name)
	case err != nil:
		return nil, fmt.Errorf("read record %s/%s: %w", d.Path, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat record %s/%s: %w", d.Path, name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("read record %s/%s: not a regular file", d.Path, name)
	}
	if int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("read record %s/%s: %w: file owned by uid %d", d.Path, name, ErrForeign, st.Uid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read record %s/%s: %w", d.Path, name, err)
	}
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("read record %s/%s: larger than %d bytes", d.Path, name, maxRecordSize)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode record %s/%s: %w", d.Path, name, err)
	}
	if !ValidID(r.ID) || r.ID+recordSuffix != name {
		return nil, fmt.Errorf("record %s/%s holds id %q", d.Path, name, r.ID)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("record %s/%s: version %d, want %d", d.Path, name, r.Version, Version)
	}
	return &r, nil
}

// List reads every record in the directory, sorted by creation time, newest
// first. Files that cannot be read as records are returned as errors beside
// the records, so a caller can log them and go on.
func (d *StateDir) List() ([]*Record, []error) {
	names, err := d.names()
	if err != nil {
		return nil, []error{err}
	}
	var recs []*Record
	var errs []error
	for _, n := range names {
		r, err := d.readFile(n)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) { // removed since the listing
				errs = append(errs, err)
			}
			continue
		}
		recs = append(recs, r)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Created.After(recs[j].Created) })
	return recs, errs
}

func (d *StateDir) names() ([]string, error) {
	dup, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.Path, err)
	}
	f := os.NewFile(uintptr(dup), d.Path)
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.Path, err)
	}
	var names []string
	for _, n := range all {
		if !strings.HasPrefix(n, ".") && strings.HasSuffix(n, recordSuffix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// Find returns the newest record that Matches name. It returns an error
// wrapping os.ErrNotExist if none does; unreadable records are skipped and
// returned in the slice of errors.
func (d *StateDir) Find(name string) (*Record, []error, error) {
	recs, errs := d.List()
	for _, r := range recs {
		if r.Matches(name) {
			return r, errs, nil
		}
	}
	return nil, errs, fmt.Errorf("no record for container %q in %s: %w", name, d.Path, os.ErrNotExist)
}

// RemoveStale deletes records whose process is gone or whose pid now names
// another process (poststop never ran: conmon was killed). It returns the ids
// it removed.
func (d *StateDir) RemoveStale() []string {
	recs, _ := d.List()
	var removed []string
	for _, r := range recs {
		if !r.Alive() {
			if d.Remove(r.ID) == nil {
				removed = append(removed, r.ID)
			}
		}
	}
	return removed
}

// Alive reports whether the recorded process still runs: same pid, same start
// time.
func (r *Record) Alive() bool {
	return proc.Alive(r.PID, r.PIDStart)
}

// ShortID is the 12-character form of a container id that Podman prints.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ValidID reports whether id is a container id this package stores: 1-128
// characters of [A-Za-z0-9_.-], not starting with '.', so that it is safe
// as a file name in the state directory (temp files start with '.').
func ValidID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
