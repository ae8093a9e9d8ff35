package allow

import (
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string // want: canonical List.String()
	}{
		{"one user", "crossuser", "crossuser"},
		{"commas", "crossuser,uid:1003,@web", "crossuser,uid:1003,@web"},
		{"spaces", "crossuser  uid:0\t@web", "crossuser,uid:0,@web"},
		{"commas and spaces", "a, b ,c", "a,b,c"},
		{"machine account", "host$", "host$"},
		{"address", "192.0.2.7", "192.0.2.7"},
		{"single prefix is an address", "192.0.2.7/32", "192.0.2.7"},
		{"network", "10.0.0.0/8,fd00::/8", "10.0.0.0/8,fd00::/8"},
		{"ipv6 address", "::1", "::1"},
		{"mapped address", "::ffff:127.0.0.1", "127.0.0.1"},
		{"mapped network", "::ffff:127.0.0.0/104", "127.0.0.0/8"},
		{"largest uid", "uid:4294967294", "uid:4294967294"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(tc.value)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.value, err)
			}
			if got := l.String(); got != tc.want {
				t.Errorf("Parse(%q) = %q; want %q", tc.value, got, tc.want)
			}
			again, err := Parse(l.String())
			if err != nil || again.String() != l.String() {
				t.Errorf("Parse(%q) = %v, %v; want it back", l.String(), again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const rule = "; want " + Rule
	for _, tc := range []struct{ name, value, want string }{
		{"empty", "", `invalid bro.allow="": empty value` + rule},
		{"blank", "  ", `invalid bro.allow="  ": empty value` + rule},
		{"empty entry", "a,,b", `invalid bro.allow="a,,b": entry "": empty entry` + rule},
		{"trailing comma", "a,", `invalid bro.allow="a,": entry "": empty entry` + rule},
		{"uid not a number", "uid:x", `invalid bro.allow="uid:x": uid "x" is not a number` + rule},
		{"uid empty", "a uid:", `invalid bro.allow="a uid:": entry "uid:": uid "" is not a number` + rule},
		{"uid signed", "uid:+1", `invalid bro.allow="uid:+1": uid "+1" is not a number` + rule},
		{"uid -1", "uid:4294967295", `invalid bro.allow="uid:4294967295": uid 4294967295 is out of range 0-4294967294` + rule},
		{"uid too big", "uid:99999999999", `invalid bro.allow="uid:99999999999": uid 99999999999 is out of range 0-4294967294` + rule},
		{"group empty", "@", `invalid bro.allow="@": "" is not a group name` + rule},
		{"group bad", "@a/b", `invalid bro.allow="@a/b": "a/b" is not a group name` + rule},
		{"bad name", "-rf", `invalid bro.allow="-rf": "-rf" is not a user name` + rule},
		{"name too long", "abcdefghijklmnopqrstuvwxyz0123456", `invalid bro.allow="abcdefghijklmnopqrstuvwxyz0123456": "abcdefghijklmnopqrstuvwxyz0123456" is not a user name` + rule},
		{"bad ipv4", "300.1.1.1", `invalid bro.allow="300.1.1.1": "300.1.1.1" is not an IP address` + rule},
		{"digits", "1234", `invalid bro.allow="1234": "1234" is not an IP address` + rule},
		{"zone", "fe80::1%eth0", `invalid bro.allow="fe80::1%eth0": address fe80::1%eth0 has a zone` + rule},
		{"host bits", "10.1.2.3/8", `invalid bro.allow="10.1.2.3/8": network 10.1.2.3/8 has host bits set (want 10.0.0.0/8)` + rule},
		{"bad prefix", "10.0.0.0/33", `invalid bro.allow="10.0.0.0/33": "10.0.0.0/33" is not a network (IP/PREFIX)` + rule},
		{"name with slash", "a/b", `invalid bro.allow="a/b": "a/b" is not a network (IP/PREFIX)` + rule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(tc.value)
			if err == nil {
				t.Fatalf("Parse(%q) = %v; want an error", tc.value, l)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Parse(%q):\n got %s\nwant %s", tc.value, got, tc.want)
			}
		})
	}
}

func TestCheckMode(t *testing.T) {
	for _, mode := range []string{"", "proxy"} {
		if err := CheckMode(mode); err != nil {
			t.Errorf("CheckMode(%q) = %v; want nil", mode, err)
		}
	}
	for mode, want := range map[string]string{
		"handoff": "bro.allow cannot be used with bro.mode=handoff: handoff passes the socket into the container and no proxy checks who connects; remove one of them",
		"direct":  "bro.allow cannot be used with bro.mode=direct: the container takes systemd's socket itself and no proxy checks who connects; remove one of them",
	} {
		if err := CheckMode(mode); err == nil || err.Error() != want {
			t.Errorf("CheckMode(%s) = %v; want %s", mode, err, want)
		}
	}
}
