package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/internal/proc"
	"github.com/brothaman/brothaman-go/internal/proctest"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"golang.org/x/sys/unix"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// newStateDir opens a fresh state directory under t.TempDir.
func newStateDir(t *testing.T) *StateDir {
	t.Helper()
	d, err := OpenStateDir(filepath.Join(t.TempDir(), "bro"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func testRecord(id string) *Record {
	return &Record{
		Version:    Version,
		ID:         id,
		Name:       "web",
		Unit:       "web.service",
		PID:        4242,
		PIDStart:   123456,
		NetNS:      "/run/netns/netns-1",
		NetNSDev:   4,
		NetNSIno:   4026532000,
		UID:        1001,
		Annotation: "8080,[::1]:53:5353/udp",
		Ports: []annotation.Port{
			{ListenIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 8080, Proto: "tcp"},
			{ListenIP: netip.MustParseAddr("::1"), HostPort: 53, ContainerPort: 5353, Proto: "udp"},
		},
		Created: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	d := newStateDir(t)
	want := testRecord(testID)
	if err := d.Write(want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := d.Read(testID)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %+v; want %+v", got, want)
	}
	fi, err := os.Lstat(filepath.Join(d.Path, testID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v; want a regular file with mode 0600", fi.Mode())
	}
	// Ports are stored in the annotation grammar, readable by a human.
	data, err := os.ReadFile(filepath.Join(d.Path, testID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"[::1]:53:5353/udp"`)) {
		t.Errorf("record file does not hold the port in canonical form:\n%s", data)
	}
	// Overwriting replaces the record.
	want.PID = 4343
	if err := d.Write(want); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	if got, err := d.Read(testID); err != nil || got.PID != 4343 {
		t.Errorf("Read after overwrite = %+v, %v; want pid 4343", got, err)
	}
	if err := d.Remove(testID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Read(testID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read after Remove: got %v; want an error wrapping os.ErrNotExist", err)
	}
	if err := d.Remove(testID); err != nil {
		t.Errorf("Remove of a missing record: got %v; want nil", err)
	}
	assertOnlyFiles(t, d.Path)
}

// assertOnlyFiles checks that dir holds exactly the named files: no temp
// file is left behind.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(names)
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("files in %s: got %q; want %q", dir, got, names)
	}
}

func TestRecordInvalidIDs(t *testing.T) {
	d := newStateDir(t)
	// Something for a traversal to find if it escaped the directory.
	if err := os.WriteFile(filepath.Join(filepath.Dir(d.Path), "x.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../x", ".hidden", ".", "..", "a/b", "/etc/passwd", "a b", "a\x00b", "é", strings.Repeat("a", 129)} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			r := testRecord(id)
			if err := d.Write(r); err == nil || err.Error() != fmt.Sprintf("write record: invalid container id %q", id) {
				t.Errorf("Write(id %q) = %v; want the invalid id error", id, err)
			}
			if _, err := d.Read(id); err == nil || err.Error() != fmt.Sprintf("read record: invalid container id %q", id) {
				t.Errorf("Read(%q) = %v; want the invalid id error", id, err)
			}
			if err := d.Remove(id); err == nil || err.Error() != fmt.Sprintf("remove record: invalid container id %q", id) {
				t.Errorf("Remove(%q) = %v; want the invalid id error", id, err)
			}
		})
	}
	assertOnlyFiles(t, d.Path)
	// The longest valid id still fits a temp file name.
	long := strings.Repeat("a", 128)
	if err := d.Write(testRecord(long)); err != nil {
		t.Errorf("Write of a 128-character id: %v", err)
	}
}

func TestReadRefuses(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, path string)
		want  string // %s is the record's path
		is    error
	}{
		{
			name: "symlink to a good record",
			plant: func(t *testing.T, path string) {
				good := filepath.Join(t.TempDir(), "good.json")
				writeJSON(t, good, testRecord(testID))
				mustDo(t, os.Symlink(good, path))
			},
			want: "read record %s: is a symlink",
		},
		{
			name: "dangling symlink",
			plant: func(t *testing.T, path string) {
				mustDo(t, os.Symlink("/nonexistent", path))
			},
			want: "read record %s: is a symlink",
		},
		{
			name: "fifo",
			plant: func(t *testing.T, path string) {
				mustDo(t, unix.Mkfifo(path, 0o600))
			},
			want: "read record %s: not a regular file",
		},
		{
			name: "directory",
			plant: func(t *testing.T, path string) {
				mustMkdir(t, path, 0o700)
			},
			want: "read record %s: not a regular file",
		},
		{
			name: "unix socket",
			plant: func(t *testing.T, path string) {
				// A socket inode without a listener: open(2) fails with ENXIO.
				mustDo(t, unix.Mknod(path, unix.S_IFSOCK|0o600, 0))
			},
			want: "read record %s: no such device or address",
		},
		{
			name: "owned by another uid",
			plant: func(t *testing.T, path string) {
				requireRoot(t) // chown to another uid
				writeJSON(t, path, testRecord(testID))
				mustDo(t, os.Chown(path, 65534, 65534))
			},
			want: "read record %s: record does not belong to this user: file owned by uid 65534",
			is:   ErrForeign,
		},
		{
			name: "oversized",
			plant: func(t *testing.T, path string) {
				r := testRecord(testID)
				r.Name = strings.Repeat("n", maxRecordSize)
				writeJSON(t, path, r)
			},
			want: "read record %s: larger than 65536 bytes",
		},
		{
			name: "another id",
			plant: func(t *testing.T, path string) {
				writeJSON(t, path, testRecord("other"))
			},
			want: `record %s holds id "other"`,
		},
		{
			name: "no id",
			plant: func(t *testing.T, path string) {
				mustDo(t, os.WriteFile(path, []byte(`{"version":1}`), 0o600))
			},
			want: `record %s holds id ""`,
		},
		{
			name: "other version",
			plant: func(t *testing.T, path string) {
				r := testRecord(testID)
				r.Version = 2
				writeJSON(t, path, r)
			},
			want: "record %s: version 2, want 1",
		},
		{
			name: "truncated",
			plant: func(t *testing.T, path string) {
				data, err := json.Marshal(testRecord(testID))
				mustDo(t, err)
				mustDo(t, os.WriteFile(path, data[:len(data)/2], 0o600))
			},
			want: "decode record %s: unexpected end of JSON input",
		},
		{
			name: "bad port",
			plant: func(t *testing.T, path string) {
				mustDo(t, os.WriteFile(path, []byte(`{"version":1,"id":"`+testID+`","ports":["0"]}`), 0o600))
			},
			want: `decode record %s: invalid bro.activate="0": container port 0 is out of range 1-65535; want ` + annotation.PortRule,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newStateDir(t)
			path := filepath.Join(d.Path, testID+".json")
			tt.plant(t, path)
			type result struct {
				r   *Record
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := d.Read(testID)
				done <- result{r, err}
			}()
			var res result
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				// Unblock the reader so the test binary can end.
				if f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				t.Fatalf("Read(%s) blocked for 5s", tt.name)
			}
			if res.err == nil {
				t.Fatalf("Read succeeded with %+v; want an error", res.r)
			}
			want := fmt.Sprintf(tt.want, path)
			if res.err.Error() != want {
				t.Errorf("Read error\n got %s\nwant %s", res.err, want)
			}
			if tt.is != nil && !errors.Is(res.err, tt.is) {
				t.Errorf("Read error %v does not wrap %v", res.err, tt.is)
			}
			// List reports the same problem beside the records, and Find
			// skips it.
			recs, errs := d.List()
			if len(recs) != 0 || len(errs) != 1 || errs[0].Error() != want {
				t.Errorf("List = %v, %v; want no records and the error %q", recs, errs, want)
			}
			if _, _, err := d.Find(testID); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Find(%s) = %v; want an error wrapping os.ErrNotExist", testID, err)
			}
		})
	}
}

// A planted symlink or FIFO is replaced by the next Write, never written through.
func TestWriteReplacesPlantedFile(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, path, target string)
	}{
		{"symlink", func(t *testing.T, path, target string) { mustDo(t, os.Symlink(target, path)) }},
		{"fifo", func(t *testing.T, path, target string) { mustDo(t, unix.Mkfifo(path, 0o600)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newStateDir(t)
			target := filepath.Join(t.TempDir(), "victim")
			mustDo(t, os.WriteFile(target, []byte("precious"), 0o600))
			path := filepath.Join(d.Path, testID+".json")
			tt.plant(t, path, target)
			done := make(chan error, 1)
			go func() { done <- d.Write(testRecord(testID)) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Write blocked for 5s")
			}
			if data, _ := os.ReadFile(target); string(data) != "precious" {
				t.Errorf("Write wrote through the %s: target holds %q", tt.name, data)
			}
			if r, err := d.Read(testID); err != nil || r.ID != testID {
				t.Errorf("Read after Write = %v, %v; want the record", r, err)
			}
		})
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	mustDo(t, err)
	mustDo(t, os.WriteFile(path, data, 0o600))
}

func TestListAndFind(t *testing.T) {
	d := newStateDir(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []*Record{
		{ID: "aaaaaaaaaaaa1111", Name: "db", Unit: "db.service"},
		{ID: "bbbbbbbbbbbb2222", Name: "web"},
		{ID: "cccccccccccc3333", Name: "db"}, // a newer container with the same name
	}
	for i, r := range recs {
		r.Version = Version
		r.Created = base.Add(time.Duration(i) * time.Minute)
		if err := d.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	// Neither temp files nor other files are records.
	mustDo(t, os.WriteFile(filepath.Join(d.Path, ".aaaaaaaaaaaa1111.0123456789ab.tmp"), []byte("{"), 0o600))
	mustDo(t, os.WriteFile(filepath.Join(d.Path, ".hidden.json"), []byte("{"), 0o600))
	mustDo(t, os.WriteFile(filepath.Join(d.Path, "notes.txt"), []byte("{"), 0o600))

	got, errs := d.List()
	if len(errs) != 0 {
		t.Errorf("List errors: %v; want none", errs)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if want := "cccccccccccc3333 bbbbbbbbbbbb2222 aaaaaaaaaaaa1111"; strings.Join(ids, " ") != want {
		t.Errorf("List ids (newest first) = %q; want %q", ids, want)
	}

	tests := []struct {
		name, want string
	}{
		{"aaaaaaaaaaaa1111", "aaaaaaaaaaaa1111"},
		{"aaaaaaaaaaaa", "aaaaaaaaaaaa1111"},
		{"db", "cccccccccccc3333"},
		{"db.service", "aaaaaaaaaaaa1111"},
		{"web", "bbbbbbbbbbbb2222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, errs, err := d.Find(tt.name)
			if err != nil || len(errs) != 0 {
				t.Fatalf("Find(%q) = %v, %v", tt.name, errs, err)
			}
			if r.ID != tt.want {
				t.Errorf("Find(%q) = %s; want %s", tt.name, r.ID, tt.want)
			}
		})
	}
	for _, name := range []string{"", "nope", "aaaa", "bbbbbbbbbbb"} {
		t.Run("missing "+name, func(t *testing.T) {
			r, _, err := d.Find(name)
			want := fmt.Sprintf("no record for container %q in %s: file does not exist", name, d.Path)
			if err == nil || err.Error() != want || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Find(%q) = %v, %v; want error %q", name, r, err, want)
			}
		})
	}
}

func TestListEmptyAndForeign(t *testing.T) {
	requireRoot(t) // chown to another uid
	d := newStateDir(t)
	if recs, errs := d.List(); len(recs) != 0 || len(errs) != 0 {
		t.Errorf("List of an empty directory = %v, %v; want nothing", recs, errs)
	}
	mine := testRecord("mine")
	mustDo(t, d.Write(mine))
	foreign := filepath.Join(d.Path, "theirs.json")
	writeJSON(t, foreign, testRecord("theirs"))
	mustDo(t, os.Chown(foreign, 1001, 1001))
	recs, errs := d.List()
	if len(recs) != 1 || recs[0].ID != "mine" {
		t.Errorf("List records = %v; want only mine", recs)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrForeign) {
		t.Errorf("List errors = %v; want one wrapping ErrForeign", errs)
	}
	if r, _, err := d.Find("theirs"); err == nil {
		t.Errorf("Find(theirs) = %+v; want the foreign record ignored", r)
	}
}

func TestMatches(t *testing.T) {
	r := &Record{ID: testID, Name: "web", Unit: "probe.service"}
	noName := &Record{ID: testID}
	tests := []struct {
		name  string
		rec   *Record
		query string
		want  bool
	}{
		{"full id", r, testID, true},
		{"12-character prefix", r, testID[:12], true},
		{"longer prefix", r, testID[:20], true},
		{"11-character prefix", r, testID[:11], false},
		{"not a prefix", r, "123456789abcdef", false},
		{"name", r, "web", true},
		{"other name", r, "db", false},
		{"unit", r, "probe.service", true},
		{"unit without suffix", r, "probe", true},
		{"unit other suffix", r, "probe.socket", false},
		{"empty", r, "", false},
		{"empty on a record without name or unit", noName, "", false},
		{"suffix alone on a record without unit", noName, ".service", false},
		{"name on a record without name", noName, "web", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.Matches(tt.query); got != tt.want {
				t.Errorf("%+v.Matches(%q) = %v; want %v", tt.rec, tt.query, got, tt.want)
			}
		})
	}
}

// TestConcurrentWritesAndReads runs many writers of different ids and of one
// shared id beside readers and listers: a reader sees a whole record or none,
// never part of one. Run it with -race.
func TestConcurrentWritesAndReads(t *testing.T) {
	d := newStateDir(t)
	const (
		writers = 8
		rounds  = 25
		shared  = "shared"
		// Large enough that a write takes more than one syscall's worth of
		// page cache, small enough to stay under maxRecordSize.
		padding = 32 << 10
	)
	// consistent checks a record written by writer w: its Name is w's
	// letter repeated, its PID is w.
	consistent := func(r *Record) error {
		if r.PID < 0 || r.PID >= writers {
			return fmt.Errorf("record %s has pid %d", r.ID, r.PID)
		}
		if want := strings.Repeat(string(rune('a'+r.PID)), padding); r.Name != want {
			return fmt.Errorf("record %s (pid %d) has a mixed name of %d bytes", r.ID, r.PID, len(r.Name))
		}
		if len(r.Ports) != 1 || r.Ports[0].ContainerPort != uint16(1000+r.PID) {
			return fmt.Errorf("record %s (pid %d) has ports %v", r.ID, r.PID, r.Ports)
		}
		return nil
	}
	stop := make(chan struct{})
	problems := make(chan error, 100)
	report := func(err error) {
		select {
		case problems <- err:
		default:
		}
	}
	var writersWG, readersWG sync.WaitGroup
	for w := 0; w < writers; w++ {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for i := 0; i < rounds; i++ {
				for _, id := range []string{fmt.Sprintf("own-%d", w), shared} {
					r := testRecord(id)
					r.PID = w
					r.Name = strings.Repeat(string(rune('a'+w)), padding)
					r.Ports = []annotation.Port{{ListenIP: annotation.DefaultListenIP, HostPort: uint16(1000 + w), ContainerPort: uint16(1000 + w), Proto: "tcp"}}
					r.Created = time.Now()
					if err := d.Write(r); err != nil {
						report(err)
					}
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r, err := d.Read(shared); err == nil {
					if err := consistent(r); err != nil {
						report(err)
					}
				} else if !errors.Is(err, os.ErrNotExist) {
					report(fmt.Errorf("Read: %w", err))
				}
				recs, errs := d.List()
				for _, err := range errs {
					report(fmt.Errorf("List: %w", err))
				}
				for _, r := range recs {
					if err := consistent(r); err != nil {
						report(err)
					}
				}
			}
		}()
	}
	writersWG.Wait()
	close(stop)
	readersWG.Wait()
	close(problems)
	for err := range problems {
		t.Error(err)
	}
	recs, errs := d.List()
	if len(recs) != writers+1 || len(errs) != 0 {
		t.Errorf("after the race List = %d records, %v; want %d records, no errors", len(recs), errs, writers+1)
	}
	want := []string{shared + ".json"}
	for w := 0; w < writers; w++ {
		want = append(want, fmt.Sprintf("own-%d.json", w))
	}
	assertOnlyFiles(t, d.Path, want...)
}

// Records survive a reopen of the directory and a concurrent Remove is not
// an error for List.
func TestRemoveDuringList(t *testing.T) {
	d := newStateDir(t)
	for i := 0; i < 50; i++ {
		mustDo(t, d.Write(testRecord(fmt.Sprintf("c%d", i))))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			if err := d.Remove(fmt.Sprintf("c%d", i)); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := 0; i < 20; i++ {
		if _, errs := d.List(); len(errs) != 0 {
			t.Errorf("List during Remove: errors %v; want none", errs)
		}
	}
	<-done
	d2, err := OpenStateDir(d.Path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if recs, errs := d2.List(); len(recs) != 0 || len(errs) != 0 {
		t.Errorf("List after removing all = %v, %v; want nothing", recs, errs)
	}
}

func TestRecordAlive(t *testing.T) {
	pid := proctest.Sleeper(t, false)
	start, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	gone := proctest.Dead(t)
	tests := []struct {
		name string
		rec  Record
		want bool
	}{
		{"live process", Record{PID: pid, PIDStart: start}, true},
		{"recycled pid (start time differs)", Record{PID: pid, PIDStart: start + 1}, false},
		{"dead pid", Record{PID: gone, PIDStart: start}, false},
		{"pid 0", Record{PID: 0}, false},
		{"negative pid", Record{PID: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.Alive(); got != tt.want {
				t.Errorf("Alive() of pid %d start %d = %v; want %v", tt.rec.PID, tt.rec.PIDStart, got, tt.want)
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	pid := proctest.Sleeper(t, false)
	start, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	gone := proctest.Dead(t)
	d := newStateDir(t)
	records := []struct {
		id         string
		pid        int
		start      uint64
		wantRemove bool
	}{
		{"live", pid, start, false},
		{"dead", gone, start, true},
		{"recycled", pid, start - 1, true},
		{"live-too", pid, start, false},
	}
	var wantRemoved []string
	for _, r := range records {
		rec := testRecord(r.id)
		rec.PID, rec.PIDStart = r.pid, r.start
		mustDo(t, d.Write(rec))
		if r.wantRemove {
			wantRemoved = append(wantRemoved, r.id)
		}
	}
	// A file that is not a record is neither removed nor a reason to stop.
	mustDo(t, os.WriteFile(filepath.Join(d.Path, "junk.json"), []byte("{"), 0o600))

	removed := d.RemoveStale()
	sort.Strings(removed)
	sort.Strings(wantRemoved)
	if !reflect.DeepEqual(removed, wantRemoved) {
		t.Errorf("RemoveStale() = %q; want %q", removed, wantRemoved)
	}
	assertOnlyFiles(t, d.Path, "junk.json", "live.json", "live-too.json")
	if again := d.RemoveStale(); len(again) != 0 {
		t.Errorf("second RemoveStale() = %q; want nothing", again)
	}
}

func TestShort(t *testing.T) {
	tests := []struct{ id, want string }{
		{"", ""},
		{"abc", "abc"},
		{strings.Repeat("a", 12), strings.Repeat("a", 12)},
		{testID, testID[:12]},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ShortID(tt.id); got != tt.want {
				t.Errorf("ShortID(%q) = %q; want %q", tt.id, got, tt.want)
			}
		})
	}
}
