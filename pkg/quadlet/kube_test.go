package quadlet

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    bro.activate: "127.0.0.1:8080:80"
    bro.idle-stop: 5min
spec:
  containers:
  - name: httpd
    image: localhost/bbox:latest
`

func TestLoadKube(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       map[string]string
	}{
		{"pod", podYAML, map[string]string{"bro.activate": "127.0.0.1:8080:80", "bro.idle-stop": "5min"}},
		// Podman 5.8 passes a Deployment's own annotations to the
		// containers, not its template's
		{"deployment", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    bro.activate: "8080"
spec:
  template:
    metadata:
      annotations:
        bro.activate: "9"
`, map[string]string{"bro.activate": "8080"}},
		{"the annotated pod of several, after a ConfigMap", `kind: ConfigMap
metadata:
  name: cfg
---
kind: Pod
metadata:
  name: plain
  annotations:
    other: x
---
kind: Pod
metadata:
  name: db
  annotations:
    bro.activate: "5432"
`, map[string]string{"bro.activate": "5432"}},
		{"no annotations: the first pod's", "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    a: b\n", map[string]string{"a": "b"}},
		{"no pod", "kind: ConfigMap\nmetadata:\n  name: c\n", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "web.yaml"), tt.yaml)
			writeFile(t, filepath.Join(dir, "web.kube"), "[Kube]\nYaml=web.yaml\n")
			c, err := Load(filepath.Join(dir, "web.kube"), []string{dir})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(c.Annotations, tt.want) {
				t.Errorf("Annotations = %v; want %v", c.Annotations, tt.want)
			}
			if c.Name != "web" || c.ContainerName != "web.service" || c.Kube != filepath.Join(dir, "web.yaml") {
				t.Errorf("Name, ContainerName, Kube = %q, %q, %q; want web, web.service, %s", c.Name, c.ContainerName, c.Kube, filepath.Join(dir, "web.yaml"))
			}
			if c.NotifiesReady() {
				t.Errorf("NotifiesReady() = true for a .kube quadlet; want false")
			}
		})
	}
}

func TestLoadKubeDropInAndAbsolutePath(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(other, "pod.yaml"), podYAML)
	writeFile(t, filepath.Join(dir, "web.kube"), "[Kube]\nYaml=missing.yaml\n")
	writeFile(t, filepath.Join(dir, "web.kube.d", "10-yaml.conf"), "[Kube]\nYaml="+filepath.Join(other, "pod.yaml")+"\n")
	c, err := Load(filepath.Join(dir, "web.kube"), []string{dir})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Annotations["bro.activate"]; got != "127.0.0.1:8080:80" {
		t.Errorf("bro.activate = %q; want 127.0.0.1:8080:80 (from the drop-in's Yaml=)", got)
	}
}

func TestLoadKubeErrors(t *testing.T) {
	dir := t.TempDir()
	two := "kind: Pod\nmetadata:\n  name: a\n  annotations:\n    bro.activate: \"1\"\n---\nkind: Pod\nmetadata:\n  name: b\n  annotations:\n    bro.activate: \"2\"\n"
	writeFile(t, filepath.Join(dir, "two.yaml"), two)
	writeFile(t, filepath.Join(dir, "bad.yaml"), "kind: [Pod\n")
	writeFile(t, filepath.Join(dir, "big.yaml"), strings.Repeat("#", MaxKubeSize+1))
	tests := []struct{ name, kube, want string }{
		{"no Yaml=", "[Kube]\nNetwork=none\n", "no Yaml= in [Kube]"},
		{"missing YAML", "[Kube]\nYaml=nothere.yaml\n", "read kube YAML: open " + filepath.Join(dir, "nothere.yaml") + ": no such file or directory"},
		{"two annotated pods", "[Kube]\nYaml=two.yaml\n", `pods "a" and "b" both have bro.* annotations; want one per .kube quadlet`},
		{"malformed", "[Kube]\nYaml=bad.yaml\n", "parse kube YAML " + filepath.Join(dir, "bad.yaml")},
		{"oversized", "[Kube]\nYaml=big.yaml\n", "larger than 4194304 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "q.kube")
			writeFile(t, p, tt.kube)
			_, err := Load(p, []string{dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("Load = %v; want an error naming %s with %q", err, p, tt.want)
			}
		})
	}
}

func TestFindKube(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(first, "both.container"), "[Container]\n")
	writeFile(t, filepath.Join(first, "both.kube"), "[Kube]\n")
	writeFile(t, filepath.Join(first, "pod.kube"), "[Kube]\n")
	writeFile(t, filepath.Join(second, "pod.container"), "[Container]\n")
	writeFile(t, filepath.Join(second, "only.kube"), "[Kube]\n")
	dirs := []string{first, second}
	want := map[string]string{
		"both": filepath.Join(first, "both.container"), // .container wins in one directory
		"pod":  filepath.Join(first, "pod.kube"),       // the first directory wins
		"only": filepath.Join(second, "only.kube"),
	}
	if got := FindAll(dirs); !reflect.DeepEqual(got, want) {
		t.Errorf("FindAll = %v; want %v", got, want)
	}
	for name, path := range want {
		if got, err := Find(name, dirs); err != nil || got != path {
			t.Errorf("Find(%s) = %q, %v; want %q", name, got, err, path)
		}
	}
}
