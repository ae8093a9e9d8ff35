package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/quadlet"
)

// allowList is who may connect to quadlet c's activator: the --allow flag
// if given, else the quadlet's Annotation=bro.allow=…, else nil (everyone,
// as without the feature). It refuses an allow list in a mode without a
// proxy (bro.mode=handoff or direct) and, because bro-proxy resolves the
// names only when it starts, a name that is no user or group of this host
// now: a typo would otherwise be an entry that admits no one. Errors about
// the annotation start with where ("PATH: " for bro-activate; the generator
// names the quadlet itself), those about the flag with "--allow: ".
func allowList(c *quadlet.Container, flag, mode, where string, stderr io.Writer) (allow.List, error) {
	value, annotated := c.Annotation(allow.Key)
	if flag != "" {
		if annotated && value != flag {
			fmt.Fprintf(stderr, "warning: %s has Annotation=%s=%s; the units use --allow %s\n", c.Path, allow.Key, value, flag)
		}
		value, annotated, where = flag, true, "--allow: "
	}
	if !annotated {
		return nil, nil
	}
	if flag == "" && strings.Contains(value, ",") {
		fmt.Fprintf(stderr, "warning: %s has Annotation=%s=%s: Podman 4.3 cuts an annotation at its commas and then refuses to create the container; separate the entries with spaces: Annotation=\"%s=%s\"\n",
			c.Path, allow.Key, value, allow.Key, strings.Join(strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }), " "))
	}
	if err := allow.CheckMode(mode); err != nil {
		return nil, fmt.Errorf("%s%w", where, err)
	}
	l, err := allow.Parse(value)
	if err != nil {
		return nil, fmt.Errorf("%s%w", where, err)
	}
	m, err := allow.Resolve(l, uint32(os.Getuid()), allow.Files{})
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", where, allow.Key, err)
	}
	if len(m.Unresolved) > 0 {
		return nil, fmt.Errorf("%sinvalid %s=%q: %s; want users and groups of this host (%s)", where, allow.Key, value, strings.Join(m.Unresolved, ", "), allow.Rule)
	}
	return l, nil
}

// refuseAllowDirect: bro-activate-direct writes no proxy, so nothing would
// check the quadlet's allow list.
func refuseAllowDirect(c *quadlet.Container) error {
	if _, ok := c.Annotation(allow.Key); ok {
		return fmt.Errorf("%s: %w", c.Path, allow.CheckMode(annotation.ModeDirect))
	}
	return nil
}
