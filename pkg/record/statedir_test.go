package record

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// requireRoot fails tests that chown files or create namespaces when not
// root: they are part of the suite (make check and CI run it as root), not
// optional extras.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chown, namespaces): run the Go tests as root, as make check and CI do")
	}
}

func TestMapUID(t *testing.T) {
	const rootless = "0 1001 1\n1 100000 65536"
	// /proc/PID/uid_map pads its columns; the parser must not care.
	const rootlessPadded = "         0       1001          1\n         1     100000      65536\n"
	const rootful = "         0          0 4294967295\n"
	tests := []struct {
		name   string
		uidMap string
		uid    int
		want   int
	}{
		{"rootless root is the user", rootless, 0, 1001},
		{"rootless first subuid", rootless, 1, 100000},
		{"rootless last subuid", rootless, 65536, 165535},
		{"rootless padded", rootlessPadded, 0, 1001},
		{"rootless padded subuid", rootlessPadded, 1000, 100999},
		{"rootful root", rootful, 0, 0},
		{"rootful user", rootful, 1001, 1001},
		{"rootful highest", rootful, 4294967294, 4294967294},
		{"malformed lines skipped", "garbage\n0 x 1\n0 1 2 3\n0 2000 1\n", 0, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapUID([]byte(tt.uidMap), tt.uid)
			if err != nil {
				t.Fatalf("mapUID(%q, %d): %v", tt.uidMap, tt.uid, err)
			}
			if got != tt.want {
				t.Errorf("mapUID(%q, %d) = %d; want %d", tt.uidMap, tt.uid, got, tt.want)
			}
		})
	}
}

func TestMapUIDErrors(t *testing.T) {
	tests := []struct {
		name   string
		uidMap string
		uid    int
		want   string
	}{
		{"beyond rootless range", "0 1001 1\n1 100000 65536", 65537, `uid 65537 is not in the uid map "0 1001 1\n1 100000 65536"`},
		{"unmapped user", "0 1001 1\n", 1, `uid 1 is not in the uid map "0 1001 1"`},
		{"empty map", "", 0, `uid 0 is not in the uid map ""`},
		{"only malformed lines", "a b c\n", 0, `uid 0 is not in the uid map "a b c"`},
		{"zero count", "0 1001 0\n", 0, `uid 0 is not in the uid map "0 1001 0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapUID([]byte(tt.uidMap), tt.uid)
			if err == nil {
				t.Fatalf("mapUID(%q, %d) = %d; want error %q", tt.uidMap, tt.uid, got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("mapUID(%q, %d) error\n got %s\nwant %s", tt.uidMap, tt.uid, err, tt.want)
			}
		})
	}
}

func TestHostUID(t *testing.T) {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	want, err := mapUID(data, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	got, err := HostUID()
	if err != nil {
		t.Fatalf("HostUID: %v", err)
	}
	if got != want {
		t.Errorf("HostUID() = %d; want %d", got, want)
	}
}

func TestDefaultStateDir(t *testing.T) {
	tests := []struct {
		uid  int
		want string
	}{
		{0, "/run/bro"},
		{1001, "/run/user/1001/bro"},
		{65534, "/run/user/65534/bro"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := DefaultStateDir(tt.uid); got != tt.want {
				t.Errorf("DefaultStateDir(%d) = %q; want %q", tt.uid, got, tt.want)
			}
		})
	}
}

func TestStateDirPath(t *testing.T) {
	uid, err := HostUID()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		want    string
		wantErr string
	}{
		{name: "unset is the default", env: "", want: DefaultStateDir(uid)},
		{name: "absolute", env: "/tmp/bro-test", want: "/tmp/bro-test"},
		{name: "absolute is cleaned", env: "/tmp//x/../bro-test/", want: "/tmp/bro-test"},
		{name: "relative", env: "state/bro", wantErr: `BRO_STATE_DIR="state/bro": want an absolute path`},
		{name: "dot relative", env: "./bro", wantErr: `BRO_STATE_DIR="./bro": want an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(StateDirEnv, tt.env)
			got, err := StateDirPath()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("StateDirPath() = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("StateDirPath(): %v", err)
			}
			if got != tt.want {
				t.Errorf("StateDirPath() = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestOpenStateDirCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bro")
	d, err := OpenStateDir(path, true)
	if err != nil {
		t.Fatalf("OpenStateDir(%s, true): %v", path, err)
	}
	defer d.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("created %s with mode %v; want a directory with mode 0700", path, fi.Mode())
	}
	if d.Path != path {
		t.Errorf("Path = %q; want %q", d.Path, path)
	}
	// An existing, safe directory opens again, with or without create.
	for _, create := range []bool{true, false} {
		d2, err := OpenStateDir(path, create)
		if err != nil {
			t.Fatalf("OpenStateDir(%s, %v) of an existing directory: %v", path, create, err)
		}
		d2.Close()
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: got %v; want nil", err)
	}
	if d.Fd() != -1 {
		t.Errorf("Fd() after Close = %d; want -1", d.Fd())
	}
}

func TestOpenStateDirMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bro")
	d, err := OpenStateDir(path, false)
	if err == nil {
		d.Close()
		t.Fatalf("OpenStateDir(%s, false) succeeded; want an error", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStateDir(%s, false) = %v; want an error wrapping os.ErrNotExist", path, err)
	}
	if want := "open state directory " + path + ": file does not exist"; err.Error() != want {
		t.Errorf("OpenStateDir(%s, false) error\n got %s\nwant %s", path, err, want)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStateDir with create=false created %s (lstat: %v)", path, err)
	}
	// A missing parent is not created either.
	deep := filepath.Join(t.TempDir(), "no", "bro")
	if _, err := OpenStateDir(deep, true); err == nil || err.Error() != "create state directory "+deep+": no such file or directory" {
		t.Errorf("OpenStateDir(%s, true) = %v; want the mkdir error", deep, err)
	}
}

func TestOpenStateDirRefusesUnsafe(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string // %s is the path
	}{
		{
			name: "symlink to a good directory",
			setup: func(t *testing.T, path string) {
				target := filepath.Join(t.TempDir(), "real")
				mustMkdir(t, target, 0o700)
				mustDo(t, os.Symlink(target, path))
			},
			want: "state directory %s: unsafe state directory: not a directory (or a symlink)",
		},
		{
			name: "dangling symlink",
			setup: func(t *testing.T, path string) {
				mustDo(t, os.Symlink(filepath.Join(t.TempDir(), "nowhere"), path))
			},
			want: "state directory %s: unsafe state directory: not a directory (or a symlink)",
		},
		{
			name: "regular file",
			setup: func(t *testing.T, path string) {
				mustDo(t, os.WriteFile(path, nil, 0o600))
			},
			want: "state directory %s: unsafe state directory: not a directory (or a symlink)",
		},
		{
			name: "owned by another user",
			setup: func(t *testing.T, path string) {
				requireRoot(t) // chown to another uid
				mustMkdir(t, path, 0o700)
				mustDo(t, os.Chown(path, 65534, 65534))
			},
			want: "state directory %s: unsafe state directory: owned by uid 65534, not 0",
		},
		{
			name: "mode 0755",
			setup: func(t *testing.T, path string) {
				mustMkdir(t, path, 0o755)
			},
			want: "state directory %s: unsafe state directory: mode 0755, want 0700",
		},
		{
			name: "world-writable 0777",
			setup: func(t *testing.T, path string) {
				mustMkdir(t, path, 0o777)
			},
			want: "state directory %s: unsafe state directory: mode 0777, want 0700",
		},
		{
			name: "sticky world-writable 1777",
			setup: func(t *testing.T, path string) {
				mustMkdir(t, path, 0o777|os.ModeSticky)
			},
			want: "state directory %s: unsafe state directory: mode 1777, want 0700",
		},
		{
			name: "group readable 0750",
			setup: func(t *testing.T, path string) {
				mustMkdir(t, path, 0o750)
			},
			want: "state directory %s: unsafe state directory: mode 0750, want 0700",
		},
	}
	for _, tt := range tests {
		for _, create := range []bool{true, false} {
			name := tt.name + "/create=false"
			if create {
				name = tt.name + "/create=true"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "bro")
				tt.setup(t, path)
				before, _ := os.Lstat(path)
				d, err := OpenStateDir(path, create)
				if err == nil {
					d.Close()
					t.Fatalf("OpenStateDir(%s, %v) succeeded; want an error", path, create)
				}
				if !errors.Is(err, ErrUnsafeStateDir) {
					t.Errorf("OpenStateDir error %v does not wrap ErrUnsafeStateDir", err)
				}
				if want := fmt.Sprintf(tt.want, path); err.Error() != want {
					t.Errorf("OpenStateDir(%s, %v) error\n got %s\nwant %s", path, create, err, want)
				}
				after, _ := os.Lstat(path)
				if before.Mode() != after.Mode() {
					t.Errorf("OpenStateDir changed %s from %v to %v", path, before.Mode(), after.Mode())
				}
			})
		}
	}
}

func mustMkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	mustDo(t, os.Mkdir(path, 0o700))
	mustDo(t, os.Chmod(path, mode)) // not subject to the umask
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
