package allow

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts has a canonical form it
// accepts again unchanged, with no separator inside an entry; what it
// refuses is refused with one line naming the value and the rule.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"crossuser", "a,b c", "uid:0", "uid:4294967295", "@web", "10.0.0.0/8",
		"10.1.2.3/8", "::ffff:127.0.0.1", "fe80::1%eth0", "a,,b", "", " ", "host$", "1234", "a/b", "@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		l, err := Parse(value)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid bro.allow=") || !strings.HasSuffix(msg, "; want "+Rule) || strings.Contains(msg, "\n") && !strings.Contains(value, "\n") {
				t.Fatalf("Parse(%q) error %q: want one line naming the value and the rule", value, msg)
			}
			return
		}
		canon := l.String()
		again, err := Parse(canon)
		if err != nil || !reflect.DeepEqual(again, l) || again.String() != canon {
			t.Fatalf("Parse(%q) = %q, but Parse(%q) = %v, %v", value, canon, canon, again, err)
		}
		for _, e := range l {
			if s := e.String(); s == "" || strings.ContainsAny(s, ", \t\n") {
				t.Fatalf("Parse(%q): entry %q is empty or holds a separator", value, s)
			}
		}
	})
}
