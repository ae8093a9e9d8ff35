package quadlet

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirsRootless(t *testing.T) {
	root := t.TempDir()
	cfg := filepath.Join(root, "home/.config")
	run := filepath.Join(root, "run/user/1001")
	users := filepath.Join(root, "etc/containers/systemd/users")
	for _, d := range []string{
		cfg + "/containers/systemd/sub", cfg + "/containers/systemd/x.container.d",
		users + "/shared", users + "/1001/mine", users + "/1002/theirs",
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := Env{Rootless: true, UID: 1001, ConfigHome: cfg, RuntimeDir: run, Root: root}
	want := []string{
		run + "/containers/systemd",
		cfg + "/containers/systemd", cfg + "/containers/systemd/sub",
		users, users + "/shared",
		users + "/1001", users + "/1001/mine",
	}
	if got := e.Dirs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Dirs() =\n%q; want\n%q", got, want)
	}
}

func TestDirsRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/containers/systemd/users/1001", "etc/containers/systemd/db", "usr/share/containers/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := Env{UID: 0, Root: root}
	want := []string{
		root + "/run/containers/systemd",
		root + "/etc/containers/systemd", root + "/etc/containers/systemd/db",
		root + "/usr/share/containers/systemd",
	}
	if got := e.Dirs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Dirs() =\n%q; want\n%q", got, want)
	}
}

func TestDirsFromEnv(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	e := Env{Rootless: true, UnitDirs: a + ":relative:" + b, ConfigHome: "/nowhere"}
	if got, want := e.Dirs(), []string{a, b}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dirs() = %q; want %q", got, want)
	}
}

func TestFindAndLoad(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	dirs := []string{first, second}
	write(t, second+"/db.container", "[Container]\nImage=a\n")
	write(t, first+"/db.container", "[Container]\nImage=b\nAnnotation=bro.activate=5432\n")
	write(t, second+"/container.d/10-all.conf", "[Container]\nAnnotation=all=1\n")
	write(t, first+"/db.container.d/20-own.conf", "[Container]\nContainerName=%N-ctr\n")
	write(t, second+"/db.container.d/20-own.conf", "[Container]\nContainerName=shadowed\n")
	write(t, first+"/my-db.container", "[Container]\nImage=c\n")
	write(t, first+"/my-.container.d/30-prefix.conf", "[Container]\nAnnotation=bro.activate=80\n")

	p, err := Find("db", dirs)
	if err != nil || p != first+"/db.container" {
		t.Fatalf("Find(db) = %q, %v; want %q", p, err, first+"/db.container")
	}
	c, err := Load(p, dirs)
	if err != nil {
		t.Fatal(err)
	}
	if c.ContainerName != "db-ctr" {
		t.Errorf("ContainerName = %q; want \"db-ctr\"", c.ContainerName)
	}
	if want := map[string]string{"bro.activate": "5432", "all": "1"}; !reflect.DeepEqual(c.Annotations, want) {
		t.Errorf("Annotations = %q; want %q", c.Annotations, want)
	}

	c, err = Load(first+"/my-db.container", dirs)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Annotation("bro.activate"); v != "80" || c.ContainerName != "systemd-my-db" {
		t.Errorf("my-db: bro.activate = %q, ContainerName = %q; want \"80\", \"systemd-my-db\"", v, c.ContainerName)
	}

	if got, want := FindAll(dirs), map[string]string{"db": first + "/db.container", "my-db": first + "/my-db.container"}; !reflect.DeepEqual(got, want) {
		t.Errorf("FindAll = %q; want %q", got, want)
	}

	_, err = Find("nope", dirs)
	if want := "find nope.container in " + first + ", " + second + ": quadlet not found"; !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Errorf("Find(nope) error = %v; want %q", err, want)
	}
	var ne *NameError
	if _, err := Find("../etc/passwd", dirs); !errors.As(err, &ne) {
		t.Errorf("Find(../etc/passwd) error = %v; want a *NameError", err)
	}
}

func TestContainerNameErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ value, want string }{
		{"%i", `ContainerName="%i": specifier %i is not supported; want a Podman name or the specifiers %N %n %p %%`},
		{"a%", `ContainerName="a%": ends in a lone %; want a Podman name or the specifiers %N %n %p %%`},
		{"-x", `ContainerName="-x": "-x" is not a Podman container name; want [a-zA-Z0-9][a-zA-Z0-9_.-]*`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			p := dir + "/q.container"
			write(t, p, "[Container]\nContainerName="+tt.value+"\n")
			_, err := Load(p, []string{dir})
			if want := "read quadlet " + p + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("Load error = %v; want %q", err, want)
			}
		})
	}
}

func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/big.container"
	write(t, p, "[Container]\n"+strings.Repeat("#\n", MaxFileSize))
	_, err := Load(p, []string{dir})
	if want := "parse quadlet " + p + ": file is 1048577 bytes, larger than the limit of 1048576 bytes"; err == nil || err.Error() != want {
		t.Errorf("Load error = %v; want %q", err, want)
	}
}

func TestAddRemoveAnnotation(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"lf", "[Unit]\nDescription=x\n\n[Container]\nImage=a\n",
			"[Unit]\nDescription=x\n\n[Container]\n" + AddedMarker + "\nAnnotation=bro.activate=5432\nImage=a\n"},
		{"crlf", "[Container]\r\nImage=a\r\n",
			"[Container]\r\n" + AddedMarker + "\r\nAnnotation=bro.activate=5432\r\nImage=a\r\n"},
		{"header last without newline", "[Container]",
			"[Container]\n" + AddedMarker + "\nAnnotation=bro.activate=5432\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "q.container")
			write(t, p, tt.in)
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := AddAnnotation(p, "bro.activate", "5432"); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tt.want {
				t.Errorf("after AddAnnotation: %q; want %q", got, tt.want)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode after AddAnnotation = %v; want 0600", fi.Mode().Perm())
			}
			f, err := ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := f.KeyValues("Container", "Annotation"); v["bro.activate"] != "5432" {
				t.Errorf("annotation read back = %q; want \"5432\"", v["bro.activate"])
			}
			removed, err := RemoveAnnotation(p)
			if err != nil || !removed {
				t.Fatalf("RemoveAnnotation = %t, %v; want true, nil", removed, err)
			}
			got, _ = os.ReadFile(p)
			if wantBack := strings.Replace(tt.in, "[Container]", "[Container]\n", 1); string(got) != tt.in && string(got) != wantBack {
				t.Errorf("after RemoveAnnotation: %q; want %q", got, tt.in)
			}
			if removed, err := RemoveAnnotation(p); removed || err != nil {
				t.Errorf("second RemoveAnnotation = %t, %v; want false, nil", removed, err)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "q.container")
	write(t, p, "[Unit]\n")
	if err := AddAnnotation(p, "k", "v"); err == nil || err.Error() != "add annotation to "+p+": no [Container] section" {
		t.Errorf("AddAnnotation without [Container] = %v", err)
	}
}

// TestAddAnnotationSpaces: a value with spaces is written as one quoted word
// and reads back whole.
func TestAddAnnotationSpaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "web.container")
	if err := os.WriteFile(p, []byte("[Container]\nImage=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AddAnnotation(p, "bro.activate", "127.0.0.1:8080:80/tcp 127.0.0.1:8443:443/tcp"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if want := "Annotation=\"bro.activate=127.0.0.1:8080:80/tcp 127.0.0.1:8443:443/tcp\"\n"; !strings.Contains(string(data), want) {
		t.Fatalf("after AddAnnotation:\n%s\nwant a line %q", data, want)
	}
	c, err := Load(p, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Annotation("bro.activate"); !ok || v != "127.0.0.1:8080:80/tcp 127.0.0.1:8443:443/tcp" {
		t.Fatalf("Annotation(bro.activate) = %q, %v; want both ports", v, ok)
	}
}
