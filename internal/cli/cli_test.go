package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testOpts struct {
	force bool
	idle  time.Duration
	list  []string
	dir   string
}

func testCommand(o *testOpts) *Command {
	c := New("bro-test", "[OPTIONS] NAME", "Does a test.", "bro-test --idle 5min x")
	c.Operands = "quadlets"
	c.Bool(&o.force, "force", "f", "replace it")
	c.Duration(&o.idle, "idle", 90*time.Second, "idle `TIME`")
	c.List(&o.list, "listen", "l", "listen on `ADDR`")
	c.Flags.StringVar(&o.dir, "unit-dir", "", "write into `DIR`")
	c.Complete("unit-dir", ValueDirs)
	sub := New("bro-test status", "[NAME...]", "Shows status.", "")
	var user bool
	sub.Bool(&user, "user", "", "user's")
	c.Sub(sub)
	return c
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		force bool
		idle  time.Duration
		list  []string
		rest  []string
		err   string
	}{
		{[]string{"x"}, false, 90 * time.Second, nil, []string{"x"}, ""},
		{[]string{"x", "-f", "--idle", "1h 30s"}, true, time.Hour + 30*time.Second, nil, []string{"x"}, ""},
		{[]string{"--idle=500ms", "-l", "a", "--listen=b,c", "x"}, false, 500 * time.Millisecond, []string{"a", "b,c"}, []string{"x"}, ""},
		{[]string{"--force=false", "--", "-x"}, false, 90 * time.Second, nil, []string{"-x"}, ""},
		{[]string{"--idle", "5fortnights"}, false, 0, nil, nil,
			`invalid argument "5fortnights" for "--idle" flag: time span "5fortnights": unknown unit "fortnights" (want ns, us, ms, s, min, h, d, w) (see bro-test --help)`},
		{[]string{"--nope"}, false, 0, nil, nil, "unknown flag: --nope (see bro-test --help)"},
		{[]string{"-idle", "5s"}, false, 0, nil, nil, "unknown shorthand flag: 'i' in -idle (see bro-test --help)"},
		{[]string{"--force=maybe"}, false, 0, nil, nil, `invalid argument "maybe" for "-f, --force" flag: want true or false (see bro-test --help)`},
		{[]string{"--completion", "tcsh"}, false, 0, nil, nil, `invalid --completion "tcsh": want bash, zsh or fish`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var o testOpts
			c := testCommand(&o)
			c.Stdout = &bytes.Buffer{}
			err := c.Parse(tc.args)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Parse error = %v; want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.force != tc.force || o.idle != tc.idle || strings.Join(o.list, "|") != strings.Join(tc.list, "|") ||
				strings.Join(c.Args(), "|") != strings.Join(tc.rest, "|") {
				t.Fatalf("got force=%v idle=%v list=%q args=%q; want %v %v %q %q", o.force, o.idle, o.list, c.Args(), tc.force, tc.idle, tc.list, tc.rest)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var o testOpts
	c := testCommand(&o)
	var out bytes.Buffer
	c.Stdout = &out
	if err := c.Parse([]string{"x", "--help"}); !errors.Is(err, ErrDone) {
		t.Fatalf("Parse(--help) = %v; want ErrDone", err)
	}
	help := out.String()
	for _, want := range []string{
		"Usage: bro-test [OPTIONS] NAME\n",
		"  -h, --help ", "      --version ", "  -f, --force ",
		"      --idle TIME ", "(default 1min 30s)", "  -l, --listen ADDR ",
		"Examples:\n  bro-test --idle 5min x\n", "See bro-test(1) and brothaman(7).",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "true|false") || strings.Contains(help, "(default 0") {
		t.Errorf("--help shows a bool's value or a zero default:\n%s", help)
	}
	out.Reset()
	c = testCommand(&o)
	c.Stdout = &out
	if err := c.Parse([]string{"--version"}); !errors.Is(err, ErrDone) || !strings.HasPrefix(out.String(), "bro-test ") {
		t.Fatalf("Parse(--version) = %v, printed %q; want ErrDone and the version", err, out.String())
	}
}

// TestCompletionScripts checks each script with its shell's own parser and
// runs the bash one the way bash-completion does.
func TestCompletionScripts(t *testing.T) {
	home := t.TempDir()
	qdir := filepath.Join(home, ".config/containers/systemd")
	os.MkdirAll(filepath.Join(qdir, "sub"), 0o755)
	os.WriteFile(filepath.Join(qdir, "web.container"), nil, 0o644)
	os.WriteFile(filepath.Join(qdir, "sub/db.container"), nil, 0o644)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Fatalf("%s not found: apt-get install %s (test/rig/rig-up.sh installs it)", shell, shell)
			}
			var o testOpts
			c := testCommand(&o)
			var script bytes.Buffer
			if err := c.WriteCompletion(&script, shell); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "completion."+shell)
			os.WriteFile(file, script.Bytes(), 0o644)
			if out, err := exec.Command(path, "-n", file).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s\n%s", shell, err, out, script.String())
			}
			if shell == "fish" {
				cmd := exec.Command("unshare", "--user", path, "-c", `source $argv[1]; complete -C "bro-test --id"; complete -C "bro-test w"; complete -C "bro-test status --"`, file)
				cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("fish: %v\n%s", err, out)
				}
				got := strings.Fields(string(out))
				for _, w := range []string{"--idle", "web", "--user"} {
					if !contains(got, w) {
						t.Errorf("fish completion: got %q; want %q among them", got, w)
					}
				}
			}
			if shell != "bash" {
				return
			}
			for _, tc := range []struct{ words, want string }{
				{"bro-test --id", "--idle"},
				{"bro-test -", "--force -f --idle --listen -l --unit-dir --help -h --version --completion"},
				{"bro-test ", "status db web"},
				{"bro-test w", "web"},
				{"bro-test status --u", "--user"},
				{"bro-test --force d", "db"},
			} {
				words := strings.Split(tc.words, " ")
				// as an unprivileged uid (unshare's overflow uid), so the
				// script looks for the user's quadlets under $HOME
				cmd := exec.Command("unshare", "--user", path, "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _bro_test; printf '%s\n' "${COMPREPLY[@]}"`, "bash", file)
				cmd.Args = append(cmd.Args, words...)
				cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%q: %v\n%s", tc.words, err, out)
				}
				got := strings.Fields(string(out))
				for _, w := range strings.Fields(tc.want) {
					if !contains(got, w) {
						t.Errorf("completing %q: got %q; want %q among them", tc.words, got, w)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
