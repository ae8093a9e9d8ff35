package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdAnalyzeVerify runs systemd-analyze verify on every golden case
// (the rig installs it): root verifies as system units, others with --user.
// Any output fails the test too, since verify only warns about unknown keys.
// The Documentation= man pages are not checked here (--man=no).
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not installed: apt-get install systemd (test/rig/rig-up.sh does)")
	}
	// verify checks that ExecStart= is executable; any executable will do.
	proxy, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	for name, files := range goldenCases(t, proxy) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Write(dir, files, false); err != nil {
				t.Fatal(err)
			}
			// BindsTo= (activators of Notify= quadlets) needs the bound unit
			// to exist, as quadlet's NAME.service does; give it a stand-in.
			for _, f := range files {
				for _, line := range strings.Split(string(f.Data), "\n") {
					if bound, ok := strings.CutPrefix(line, "BindsTo="); ok {
						stand := filepath.Join(dir, bound)
						if err := os.WriteFile(stand, []byte("[Service]\nExecStart="+proxy+"\n"), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if d, ok := files[0], strings.HasPrefix(name, "direct"); ok {
				// A direct socket activates the quadlet's NAME.service, which
				// quadlet generates; verify refuses a socket without it.
				unit := filepath.Join(dir, strings.TrimSuffix(d.Path, ".socket")+".service")
				if err := os.WriteFile(unit, []byte("[Service]\nExecStart="+proxy+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var args []string
			if os.Getuid() != 0 {
				args = append(args, "--user")
			}
			// --man=no: verify would also run man(1) for every Documentation=
			// man: page, and the man pages are built and installed apart
			// (make install, the package), not in this test's tree.
			args = append(args, "verify", "--man=no")
			for _, f := range files {
				p := filepath.Join(dir, f.Path)
				if strings.HasSuffix(f.Path, ".conf") {
					// A drop-in is verified through the unit it extends:
					// a stand-in NAME.service in the same directory.
					unit := filepath.Join(dir, strings.TrimSuffix(filepath.Dir(f.Path), ".d"))
					if err := os.WriteFile(unit, []byte("[Service]\nExecStart="+proxy+"\n"), 0o644); err != nil {
						t.Fatal(err)
					}
					p = unit
				}
				args = append(args, p)
			}
			cmd := exec.Command(analyze, args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}
