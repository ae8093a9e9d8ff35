package quadlet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AddedMarker is the comment line AddAnnotation writes above the line it adds,
// so RemoveAnnotation removes that line and nothing the user wrote.
const AddedMarker = "# Added by bro-activate; bro-activate --remove deletes this and the next line."

// AddAnnotation adds "Annotation=KEY=VALUE" to the [Container] section of the
// quadlet at path, below the section header, marked with AddedMarker. The
// file is replaced atomically (a temporary file in the same directory, then
// rename) and keeps its mode and line endings. It returns an error if the
// file has no [Container] section or cannot be written.
func AddAnnotation(path, key, value string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("add annotation to %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return fmt.Errorf("add annotation to %s: file is larger than %d bytes", path, MaxFileSize)
	}
	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	lines := strings.SplitAfter(string(data), "\n")
	at := -1
	for i, l := range lines {
		t := strings.TrimSpace(strings.TrimPrefix(l, "\ufeff"))
		if t == "[Container]" {
			at = i + 1
			break
		}
	}
	if at < 0 {
		return fmt.Errorf("add annotation to %s: no [Container] section", path)
	}
	if !strings.HasSuffix(lines[at-1], "\n") {
		lines[at-1] += nl
	}
	added := AddedMarker + nl + "Annotation=" + AnnotationWord(key, value) + nl
	out := strings.Join(lines[:at], "") + added + strings.Join(lines[at:], "")
	return writeAtomic(path, []byte(out))
}

// RemoveAnnotation removes the lines AddAnnotation added to the quadlet at
// path, if any, and reports whether it found them.
func RemoveAnnotation(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("remove annotation from %s: %w", path, err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == AddedMarker && i+1 < len(lines) &&
			strings.HasPrefix(strings.TrimSpace(lines[i+1]), "Annotation=") {
			out := strings.Join(lines[:i], "") + strings.Join(lines[i+2:], "")
			return true, writeAtomic(path, []byte(out))
		}
	}
	return false, nil
}

// writeAtomic replaces path with data through a temporary file in the same
// directory, so a reader (quadlet at daemon-reload) sees the old or the new
// file, never a part. The mode of the old file is kept.
func writeAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// AnnotationWord is key=value as one word of an Annotation= line: quoted
// when value holds white space (quadlet splits the line into words).
func AnnotationWord(key, value string) string {
	if strings.ContainsAny(value, " \t") {
		return `"` + key + "=" + value + `"`
	}
	return key + "=" + value
}
