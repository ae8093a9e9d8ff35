package annotation

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{"": ModeProxy, "proxy": ModeProxy, "direct": ModeDirect, "handoff": ModeHandoff} {
		got, err := ParseMode(in)
		if err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Handoff", "zero-hop", " proxy"} {
		_, err := ParseMode(in)
		if err == nil || !strings.Contains(err.Error(), ModeRule) || !strings.Contains(err.Error(), in) {
			t.Errorf("ParseMode(%q) = %v; want an error naming the value and %q", in, err, ModeRule)
		}
	}
}
