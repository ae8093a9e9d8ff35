package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/common/pkg/hooks"
)

// renderHookConfig does what `make install` does to hooks.d/*.json.in.
func renderHookConfig(t *testing.T, hookPath, stage string) string {
	t.Helper()
	tmpl, err := os.ReadFile("../../hooks.d/50-bro-activate.json.in")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(tmpl), "@HOOK@", hookPath)
	s = strings.ReplaceAll(s, "@STAGE@", stage)
	p := filepath.Join(t.TempDir(), "50-bro-activate-"+stage+".json")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// podmanStages are the extension stages libpod gives containers/common's
// hook manager (hooks.New), the stages Podman runs itself: precreate is not
// an OCI stage, and without it the reader refuses a file naming it.
var podmanStages = []string{"precreate", "poststop"}

func TestHookConfigLoadsWithContainersCommon(t *testing.T) {
	self, err := os.Executable() // any existing file: Read checks hook.path exists
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"precreate", "prestart", "poststop"} {
		t.Run(stage, func(t *testing.T) {
			h, err := hooks.Read(renderHookConfig(t, self, stage), podmanStages)
			if err != nil {
				t.Fatalf("hooks.Read: %v", err)
			}
			if h.Hook.Path != self {
				t.Errorf("hook.path = %q; want %q", h.Hook.Path, self)
			}
			if got, want := strings.Join(h.Hook.Args, " "), "bro-hook "+stage; got != want {
				t.Errorf("hook.args = %q; want %q", got, want)
			}
			if len(h.Stages) != 1 || h.Stages[0] != stage {
				t.Errorf("stages = %v; want [%s]", h.Stages, stage)
			}
			if len(h.Hook.Env) != 1 || !strings.HasPrefix(h.Hook.Env[0], "PATH=/") {
				t.Errorf("hook.env = %v; want exactly one PATH", h.Hook.Env)
			}
			if h.Hook.Timeout == nil || *h.Hook.Timeout <= 0 {
				t.Errorf("hook.timeout = %v; want a positive timeout", h.Hook.Timeout)
			}
			spec := &rspec.Spec{Process: &rspec.Process{Args: []string{"sh"}}}
			for _, tc := range []struct {
				annotations map[string]string
				want        bool
			}{
				{map[string]string{"bro.activate": "8080"}, true},
				{map[string]string{"bro.activate": "bad value still runs the hook"}, true},
				{map[string]string{}, false},
				{map[string]string{"xbro.activate": "8080"}, false},
				{map[string]string{"bro.activate.extra": "8080"}, false},
				{map[string]string{"broXactivate": "8080"}, false},
			} {
				got, err := h.When.Match(spec, tc.annotations, false)
				if err != nil || got != tc.want {
					t.Errorf("Match(%v) = %v, %v; want %v", tc.annotations, got, err, tc.want)
				}
			}
		})
	}
}

func TestHookConfigMissingPathIsRefused(t *testing.T) {
	// Podman refuses to create any container while a hooks.d file names a
	// missing binary; make sure the reader says so, so install order matters.
	_, err := hooks.Read(renderHookConfig(t, "/nonexistent/bro-hook", "prestart"), nil)
	if err == nil {
		t.Fatal("hooks.Read accepted a hook whose path does not exist")
	}
}
