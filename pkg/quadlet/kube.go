package quadlet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KubeExt is the file extension of the quadlets that run `podman kube play`.
const KubeExt = ".kube"

// MaxKubeSize bounds the YAML file of a .kube quadlet.
const MaxKubeSize = 4 << 20

// A .kube quadlet names a Kubernetes YAML (Yaml=, relative to the quadlet's
// directory) and quadlet makes NAME.service of it: `podman kube play
// --service-container=true`. Podman passes the pod's annotations
// (metadata.annotations) down to the pod's containers, so bro.activate and
// the other bro.* keys are read from there. Every container of the pod runs
// in NAME.service's cgroup and shares the pod's network namespace: the
// activator follows the unit, not a container name.

// kubeDoc is what bro-activate reads of one YAML document: the annotations
// of a Pod or a Deployment. Of a Deployment, Podman 5.8 passes its own
// metadata.annotations to the containers, not its pod template's (checked
// with podman kube play); so do we.
type kubeDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
}

// loadKube reads NAME.kube, its drop-ins and its YAML. It returns an error
// naming the file for a quadlet without Yaml=, an unreadable, oversized or
// malformed YAML, and a YAML with more than one pod carrying bro.* keys
// (one activator per unit).
func loadKube(path string, dirs []string) (*Container, error) {
	name := strings.TrimSuffix(filepath.Base(path), KubeExt)
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, p := range dropins(name, KubeExt, dirs) {
		d, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		f.Merge(d)
	}
	y, ok := f.Lookup("Kube", "Yaml")
	if y = strings.TrimSpace(y); !ok || y == "" {
		return nil, fmt.Errorf("read quadlet %s: no Yaml= in [Kube]", path)
	}
	if !filepath.IsAbs(y) {
		y = filepath.Join(filepath.Dir(path), y)
	}
	annotations, err := podAnnotations(y)
	if err != nil {
		return nil, fmt.Errorf("read quadlet %s: %w", path, err)
	}
	return &Container{Name: name, Path: path, ContainerName: name + ".service",
		Annotations: annotations, File: f, Kube: y}, nil
}

// podAnnotations returns the annotations of the Pod or Deployment in the
// YAML at path that has bro.* keys, or the first one's when none has.
// Documents of other kinds are skipped.
func podAnnotations(path string) (map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kube YAML: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxKubeSize+1))
	if err != nil {
		return nil, fmt.Errorf("read kube YAML %s: %w", path, err)
	}
	if len(data) > MaxKubeSize {
		return nil, fmt.Errorf("read kube YAML %s: larger than %d bytes", path, MaxKubeSize)
	}
	var first, ours map[string]string
	var oursName string
	pods := 0
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d kubeDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse kube YAML %s: %w", path, err)
		}
		if d.Kind != "Pod" && d.Kind != "Deployment" {
			continue
		}
		a := d.Metadata.Annotations
		if pods++; pods == 1 {
			first = a
		}
		if !hasBroKey(a) {
			continue
		}
		if ours != nil {
			return nil, fmt.Errorf("kube YAML %s: pods %q and %q both have bro.* annotations; want one per .kube quadlet", path, oursName, d.Metadata.Name)
		}
		ours, oursName = a, d.Metadata.Name
	}
	if ours == nil {
		ours = first
	}
	if ours == nil {
		ours = map[string]string{}
	}
	return ours, nil
}

func hasBroKey(a map[string]string) bool {
	for k := range a {
		if strings.HasPrefix(k, "bro.") {
			return true
		}
	}
	return false
}
