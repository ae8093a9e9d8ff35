package main

import (
	"strings"
	"testing"
)

func TestCheckHandoffRuntime(t *testing.T) {
	for _, ok := range []string{"runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev", "runc version 1.2.0", "crun version 1.8.7\ncommit: abc", "crun version 0.19"} {
		if err := checkHandoffRuntime(ok); err != nil {
			t.Errorf("checkHandoffRuntime(%q) = %v; want nil", ok, err)
		}
	}
	for in, want := range map[string]string{
		"runc version 1.0.3":    "runc 1.0.3 is too old",
		"crun version 0.18":     "crun 0.18 is too old",
		"youki version 0.3.0":   "youki 0.3.0 is not known",
		"":                      "cannot tell the OCI runtime",
		"runc version garbage.": "runc garbage. is too old",
	} {
		err := checkHandoffRuntime(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), HandoffRuntimeRule) {
			t.Errorf("checkHandoffRuntime(%q) = %v; want an error with %q and the rule", in, err, want)
		}
	}
}
