package units

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write writes files below dir. Unless force is set it refuses, before
// writing anything, if one of them exists (the error wraps fs.ErrExist).
// Each file goes to a temporary file in its own directory first, and only
// when all are written are they renamed into place, so a failure leaves no
// half-written unit; if a rename fails, the files already renamed are removed
// again.
func Write(dir string, files []File, force bool) error {
	if !force {
		for _, f := range files {
			p := filepath.Join(dir, f.Path)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("write unit %s: %w", p, fs.ErrExist)
			}
		}
	}
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t) // renamed ones are gone already
		}
	}()
	for _, f := range files {
		t, err := writeTemp(filepath.Join(dir, f.Path), f.Data)
		if err != nil {
			return err
		}
		temps = append(temps, t)
	}
	for i, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.Rename(temps[i], p); err != nil {
			for _, done := range files[:i] {
				os.Remove(filepath.Join(dir, done.Path))
			}
			return fmt.Errorf("write unit %s: %w", p, err)
		}
	}
	return nil
}

func writeTemp(path string, data []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("write unit %s: %w", path, err)
	}
	t, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write unit %s: %w", path, err)
	}
	_, err = t.Write(data)
	if err == nil {
		err = t.Chmod(0o644) // CreateTemp makes 0600; units are world-readable by convention
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(t.Name())
		return "", fmt.Errorf("write unit %s: %w", path, err)
	}
	return t.Name(), nil
}

// ErrNotOurs is returned by Remove for a file that exists but does not carry
// ActivateMarker: the user wrote it, or another tool did.
var ErrNotOurs = errors.New("not written by bro-activate")

// Ours returns the files at paths (relative to dir) that exist and carry the
// ActivateMarker header. If one exists without it, it returns an error
// wrapping ErrNotOurs naming the file.
func Ours(dir string, paths []string) ([]string, error) {
	var ours []string
	for _, rel := range paths {
		p := filepath.Join(dir, rel)
		ok, err := writtenByUs(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("remove unit %s: %w", p, err)
		}
		if !ok {
			return nil, fmt.Errorf("remove unit %s: %w (first line is not %q)", p, ErrNotOurs, ActivateMarker+"…")
		}
		ours = append(ours, p)
	}
	return ours, nil
}

// Remove deletes the files at paths (relative to dir) that bro-activate wrote
// and returns the ones it deleted. Missing files are skipped. If any file
// lacks the ActivateMarker header it deletes nothing and returns Ours's
// error. Drop-in directories left empty are removed too.
func Remove(dir string, paths []string) ([]string, error) {
	ours, err := Ours(dir, paths)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, p := range ours {
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("remove unit %s: %w", p, err)
		}
		removed = append(removed, p)
		if d := filepath.Dir(p); strings.HasSuffix(d, ".d") {
			os.Remove(d) // only succeeds when empty, which is the point
		}
	}
	return removed, nil
}

func writtenByUs(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	return strings.HasPrefix(line, ActivateMarker), nil
}
