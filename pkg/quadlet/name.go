package quadlet

import (
	"fmt"
	"strings"
)

// MaxNameLen leaves room for the longest unit bro-activate derives from a
// name ("NAME-SUFFIX.service" with a 32-byte suffix) within systemd's 255.
const MaxNameLen = 200

// NameRule is the rule a quadlet name must follow, quoted in NameError.
const NameRule = "1-200 characters of A-Z a-z 0-9 _ . : -, not starting with - or ., no / and no .."

// NameError is a quadlet name that is not a safe unit name.
type NameError struct {
	Value  string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid quadlet name %q: %s; want %s", e.Value, e.Reason, NameRule)
}

// ValidateName checks that name (NAME of NAME.container) is a plain unit name
// that cannot climb out of a unit directory or name a template: it returns a
// *NameError naming the value and the rule otherwise.
func ValidateName(name string) error {
	fail := func(reason string) error { return &NameError{Value: name, Reason: reason} }
	switch {
	case name == "":
		return fail("empty")
	case len(name) > MaxNameLen:
		return fail(fmt.Sprintf("%d characters long", len(name)))
	case strings.Contains(name, "/"):
		return fail(`contains "/"`)
	case strings.Contains(name, ".."):
		return fail(`contains ".."`)
	case name[0] == '-' || name[0] == '.':
		return fail(fmt.Sprintf("starts with %q", name[0]))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '-') {
			return fail(fmt.Sprintf("contains %q", c))
		}
	}
	return nil
}
