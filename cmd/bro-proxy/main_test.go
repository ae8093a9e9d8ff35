package main

import (
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--container", "pg", "--exit-idle-time", "1h 2min", "-c", "10", "127.0.0.1:5432"})
	if err != nil {
		t.Fatal(err)
	}
	if o.container != "pg" || o.exitIdle != time.Hour+2*time.Minute || o.udpIdle != time.Minute || o.connectionsMax != 10 || o.target != "127.0.0.1:5432" {
		t.Errorf("parseFlags = %+v", o)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no target: give TARGET or --target"},
		{[]string{"--pid", "1", "--netns", "/x", "1.1.1.1:1"}, "give at most one of --container, --pid and --netns"},
		{[]string{"--connections-max", "0", "127.0.0.1:1"}, "--connections-max 0: want at least 1"},
		{[]string{"a", "b"}, "want at most one TARGET, got 2 arguments"},
		{[]string{"--allow", "crossuser,,x", "127.0.0.1:1"}, `invalid bro.allow="crossuser,,x": entry "": empty entry; want NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces`},
		{[]string{"--allow", "crossuser", "--handoff", "--start-unit", "a.service"}, "--allow cannot be used with --handoff: the container takes the socket itself and nothing checks who connects"},
		{[]string{"--container", "pg", "--wait-ready", "127.0.0.1:1"}, "--wait-ready needs --start-unit (the unit whose start returns once it is ready)"},
		{[]string{"--exit-idle-time", "5fortnights", "127.0.0.1:1"}, `invalid argument "5fortnights" for "--exit-idle-time" flag: time span "5fortnights": unknown unit "fortnights" (want ns, us, ms, s, min, h, d, w) (see bro-proxy --help)`},
		{[]string{"--handoff"}, `--handoff needs --start-unit NAME.service (the unit whose containers get the host sockets), got ""`},
		{[]string{"--handoff", "--start-unit", "db.socket"}, `--handoff needs --start-unit NAME.service (the unit whose containers get the host sockets), got "db.socket"`},
		{[]string{"--handoff", "--start-unit", "db.service", "127.0.0.1:1"}, "--handoff relays nothing: no TARGET, --target, --container, --pid, --netns or --proxy-protocol"},
		{[]string{"--handoff", "--start-unit", "db.service", "--proxy-protocol", "v2"}, "--handoff relays nothing: no TARGET, --target, --container, --pid, --netns or --proxy-protocol"},
		{[]string{"-exit-idle-time", "5s", "127.0.0.1:1"}, `unknown shorthand flag: 'e' in -exit-idle-time (see bro-proxy --help)`},
	} {
		if _, err := parseFlags(tc.args); err == nil || err.Error() != tc.want {
			t.Errorf("parseFlags(%q) = %v; want %s", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsHandoff(t *testing.T) {
	o, err := parseFlags([]string{"--handoff", "--start-unit", "db.service", "--wait-ready", "--exit-idle-time", "90s"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.handoff || !o.waitReady || o.startUnit != "db.service" || o.exitIdle != 90*time.Second {
		t.Errorf("parseFlags = %+v", o)
	}
}

func TestConnsFor(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		conns int
		want  int
	}{
		{20000, 4096, 4096},
		{20000, 10000, 9950},
		{256, 4096, 78},
		{102, 4096, 1},
		{50, 4096, 1},
		{1 << 20, 4096, 4096},
	} {
		if got := connsFor(tc.limit, tc.conns); got != tc.want {
			t.Errorf("connsFor(%d, %d) = %d; want %d", tc.limit, tc.conns, got, tc.want)
		}
	}
}
