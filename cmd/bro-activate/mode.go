package main

import (
	"fmt"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/quadlet"
)

// quadletMode is the mode for quadlet c: flag (bro-activate --mode) if
// given, else its Annotation=bro.mode=…, else proxy. The handoff mode needs
// the annotation in the quadlet whichever route asks for it (the OCI hook
// gives the container its seccomp filter by it), and a container whose
// seccomp filter can work.
func quadletMode(c *quadlet.Container, flag string) (string, error) {
	v, annotated := c.Annotation(annotation.ModeKey)
	mode, err := annotation.ParseMode(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.Path, err)
	}
	if flag != "" {
		if mode, err = annotation.ParseMode(flag); err != nil {
			return "", fmt.Errorf("--mode: %w", err)
		}
		if annotated && v != mode {
			return "", fmt.Errorf("--mode %s, but %s has Annotation=%s=%s: the container would run in the other mode; change one", mode, c.Path, annotation.ModeKey, v)
		}
	}
	if c.Kube != "" && mode != annotation.ModeProxy {
		return "", fmt.Errorf("%s: %s=%s: a .kube quadlet is served in proxy mode only (the pod's containers share one unit and one network namespace)", c.Path, annotation.ModeKey, mode)
	}
	if mode != annotation.ModeHandoff {
		return mode, nil
	}
	if !annotated {
		return "", fmt.Errorf("--mode handoff: add Annotation=%s=%s to %s: the OCI hook gives the container its seccomp filter by it", annotation.ModeKey, annotation.ModeHandoff, c.Path)
	}
	return mode, handoffRefusal(c)
}

// handoffRefusal names what in c switches seccomp off, and with it the hand
// over: a bind() would never reach the agent.
func handoffRefusal(c *quadlet.Container) error {
	if c.File == nil {
		return nil
	}
	if v, ok := c.File.Lookup("Container", "SeccompProfile"); ok && strings.TrimSpace(v) == "unconfined" {
		return fmt.Errorf("%s: bro.mode=handoff with SeccompProfile=unconfined: the handoff needs a seccomp filter (bind() is answered through it); remove the line", c.Path)
	}
	for _, line := range c.File.LookupAll("Container", "PodmanArgs") {
		for _, w := range strings.Fields(line) {
			w = strings.Trim(w, `"'`)
			if w == "--privileged" || w == "--privileged=true" || strings.Contains(w, "seccomp=unconfined") {
				return fmt.Errorf("%s: bro.mode=handoff with PodmanArgs=%s: %s switches seccomp off, and the handoff needs a seccomp filter (bind() is answered through it)", c.Path, line, w)
			}
		}
	}
	return nil
}
