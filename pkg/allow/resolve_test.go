package allow

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func testFiles(t *testing.T) Files {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return Files{
		Passwd: write("passwd", `root:x:0:0:root:/root:/bin/bash
# a comment
owner:x:1001:1001::/home/owner:/bin/sh
cross:x:1002:1002::/home/cross:/bin/sh
third:x:1003:1003::/home/third:/bin/sh
webber:x:1004:2000::/home/webber:/bin/sh
broken line
`),
		Group: write("group", `root:x:0:
owner:x:1001:
cross:x:1002:
web:x:2000:cross
empty:x:3000:
`),
		SubUID: write("subuid", `owner:100000:65536
cross:165536:65536
1003:231072:65536
`),
	}
}

func TestResolve(t *testing.T) {
	db := testFiles(t)
	for _, tc := range []struct {
		name, value string
		allow       map[uint32]string // uid -> by
		refuse      []uint32
		unresolved  []string
	}{
		{name: "owner only by uid", value: "uid:0",
			allow:  map[uint32]string{1001: "owner", 0: "uid:0", 100000: "subordinate uid of owner", 165535: "subordinate uid of owner"},
			refuse: []uint32{1002, 1003, 165536, 99999}},
		{name: "a name and its subordinate uids", value: "cross",
			allow:  map[uint32]string{1001: "owner", 1002: "cross", 165536: "subordinate uid of cross", 231071: "subordinate uid of cross"},
			refuse: []uint32{0, 1003, 231072}},
		{name: "subuid line by uid", value: "third",
			allow:  map[uint32]string{1003: "third", 231072: "subordinate uid of third"},
			refuse: []uint32{1002, 165536}},
		{name: "group: primary and supplementary", value: "@web",
			allow:  map[uint32]string{1002: "@web", 1004: "@web", 165536: "subordinate uid of @web (cross)"},
			refuse: []uint32{1003, 0}},
		{name: "unknown entries admit nobody", value: "nosuchuser-x,@nosuchgroup,@empty",
			allow:      map[uint32]string{1001: "owner"},
			refuse:     []uint32{0, 1002, 1003},
			unresolved: []string{`no user named "nosuchuser-x"`, `no group named "nosuchgroup"`, `group "empty" has no members`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Resolve(l, 1001, db)
			if err != nil {
				t.Fatal(err)
			}
			for uid, want := range tc.allow {
				if by, ok := m.UID(uid); !ok || by != want {
					t.Errorf("UID(%d) = %q, %v; want %q, true", uid, by, ok, want)
				}
			}
			for _, uid := range tc.refuse {
				if by, ok := m.UID(uid); ok {
					t.Errorf("UID(%d) = %q, true; want refused", uid, by)
				}
			}
			if !reflect.DeepEqual(m.Unresolved, tc.unresolved) {
				t.Errorf("Unresolved = %q; want %q", m.Unresolved, tc.unresolved)
			}
		})
	}
}

func TestMatcherAddr(t *testing.T) {
	l, err := Parse("cross,127.0.0.0/8,192.0.2.7,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resolve(l, 1001, testFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasAddresses() {
		t.Errorf("HasAddresses() = false; want true")
	}
	for _, tc := range []struct {
		addr, by string
		ok       bool
	}{
		{"127.0.0.1", "127.0.0.0/8", true},
		{"::ffff:127.0.0.9", "127.0.0.0/8", true},
		{"192.0.2.7", "192.0.2.7", true},
		{"192.0.2.8", "", false},
		{"fd12::1", "fd00::/8", true},
		{"::1", "", false},
		{"fd12::1%eth0", "fd00::/8", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			by, ok := m.Addr(netip.MustParseAddr(tc.addr))
			if by != tc.by || ok != tc.ok {
				t.Errorf("Addr(%s) = %q, %v; want %q, %v", tc.addr, by, ok, tc.by, tc.ok)
			}
		})
	}
	none, _ := Resolve(List{{Kind: User, Name: "cross"}}, 1001, testFiles(t))
	if none.HasAddresses() {
		t.Errorf("HasAddresses() = true for a list without addresses; want false")
	}
}

func TestResolveMissingSubUID(t *testing.T) {
	db := testFiles(t)
	db.SubUID = filepath.Join(t.TempDir(), "none")
	m, err := Resolve(List{{Kind: User, Name: "cross"}}, 1001, db)
	if err != nil {
		t.Fatalf("Resolve without /etc/subuid: %v; want no error", err)
	}
	if _, ok := m.UID(165536); ok {
		t.Errorf("UID(165536) admitted without a subuid file")
	}
	db.Passwd = filepath.Join(t.TempDir(), "none")
	if _, err := Resolve(nil, 1001, db); err == nil {
		t.Errorf("Resolve without a passwd file: no error; want one")
	}
}
