package hook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/brothaman/brothaman-go/internal/proc"
)

// How bro-hook knows which container is which.
//
// The OCI state carries the container id only. Podman 4.3 puts no name in the
// annotations, and /run/.containerenv holds one only for --privileged
// containers. What every Podman (and CRI-O) container has is its entry in
// containers/storage: the bundle is GRAPHROOT/overlay-containers/ID/userdata
// and GRAPHROOT/overlay-containers/containers.json (volatile-containers.json
// for --rm containers in newer storage) lists {"id", "names"}. That is a
// documented on-disk format, written before the runtime is called, so the name
// is there at prestart. CRI-O's bundle is in the run root
// (/run/containers/storage/overlay-containers/ID/userdata), beside no
// containers.json, but CRI-O writes the name into the config's annotations:
// io.kubernetes.cri-o.Name, "k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT", the
// name storage lists too. conmon's "-n NAME" argument, two processes up from
// the hook, is the last resort.
//
// The systemd unit comes from the cgroup: quadlet runs podman with
// --cgroups=split, so the container's monitor (and the hook, its descendant)
// sit in NAME.service's cgroup. The container's own cgroup is read first, the
// hook's second.

// maxStorageFile bounds containers.json (a few hundred bytes per container).
const maxStorageFile = 16 << 20

// CRIOName is the annotation in which CRI-O names a container.
const CRIOName = "io.kubernetes.cri-o.Name"

// ContainerName returns the first name of container id, or "" if no source
// knows it. annotations are the container's own (the OCI state's).
func ContainerName(bundle, id string, annotations map[string]string) string {
	if bundle != "" {
		dir := filepath.Dir(filepath.Dir(filepath.Clean(bundle)))
		for _, f := range []string{"containers.json", "volatile-containers.json"} {
			if n := nameFromStorage(filepath.Join(dir, f), id); n != "" {
				return n
			}
		}
	}
	if n := annotations[CRIOName]; plausibleName(n) {
		return n
	}
	return nameFromConmon(os.Getppid(), id)
}

// plausibleName reports whether an annotation's name has the form of a
// container name (Podman's and CRI-O's): 1-512 characters of [A-Za-z0-9_.-].
// The name goes into records and log lines; anything else is not a name.
func plausibleName(n string) bool {
	if n == "" || len(n) > 512 {
		return false
	}
	for _, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

func nameFromStorage(path, id string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var entries []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxStorageFile)).Decode(&entries); err != nil {
		return ""
	}
	for _, e := range entries {
		if e.ID == id && len(e.Names) > 0 {
			return e.Names[0]
		}
	}
	return ""
}

// nameFromConmon walks up from pid (the hook's parent is the runtime, whose
// parent is conmon) and reads "-n NAME" from a conmon monitoring id.
func nameFromConmon(pid int, id string) string {
	for i := 0; i < 4 && pid > 1; i++ {
		args := cmdline(pid)
		if len(args) > 0 && filepath.Base(args[0]) == "conmon" {
			var name, cid string
			for j := 1; j+1 < len(args); j++ {
				switch args[j] {
				case "-n", "--name":
					name = args[j+1]
				case "-c", "--cid":
					cid = args[j+1]
				}
			}
			if cid == id {
				return name
			}
			return ""
		}
		pid = parentPID(pid)
	}
	return ""
}

func cmdline(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

func parentPID(pid int) int {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.PPID
}

// SystemdUnit returns the service unit whose cgroup holds pid, else the one
// holding the calling process, else "".
func SystemdUnit(pid int) string {
	for _, path := range []string{fmt.Sprintf("/proc/%d/cgroup", pid), "/proc/self/cgroup"} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if u := unitFromCgroup(data); u != "" {
			return u
		}
	}
	return ""
}

// unitFromCgroup reads the systemd hierarchy (cgroup v2 "0::", or v1
// "name=systemd") and returns its innermost *.service component, skipping the
// user manager's own user@UID.service.
func unitFromCgroup(data []byte) string {
	var path string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "name=systemd" || (parts[0] == "0" && parts[1] == "" && path == "") {
			path = parts[2]
		}
	}
	comps := strings.Split(path, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		if strings.HasSuffix(c, ".service") && !strings.HasPrefix(c, "user@") {
			return c
		}
	}
	return ""
}
