package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseTimespan accepts systemd time spans ("30s", "5min", "1h 30min", a bare
// number of seconds) as systemd-socket-proxyd does, and Go durations
// ("1m30s", "250ms").
func parseTimespan(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("time span %q: empty", s)
	}
	if d, err := time.ParseDuration(in); err == nil && d >= 0 {
		return d, nil
	}
	units := []struct {
		names []string
		d     time.Duration
	}{
		{[]string{"usec", "us", "µs"}, time.Microsecond},
		{[]string{"msec", "ms"}, time.Millisecond},
		{[]string{"seconds", "second", "sec", "s", ""}, time.Second},
		{[]string{"minutes", "minute", "min", "m"}, time.Minute},
		{[]string{"hours", "hour", "hr", "h"}, time.Hour},
		{[]string{"days", "day", "d"}, 24 * time.Hour},
	}
	var total time.Duration
	rest := in
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i == 0 {
			return 0, fmt.Errorf("time span %q: want a number before %q", s, rest)
		}
		if i < 0 {
			i = len(rest)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("time span %q: %q is not a number", s, rest[:i])
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || (r >= '0' && r <= '9') })
		if j < 0 {
			j = len(rest)
		}
		unit := rest[:j]
		rest = rest[j:]
		found := false
		for _, u := range units {
			for _, name := range u.names {
				if unit == name {
					total += time.Duration(n * float64(u.d))
					found = true
				}
			}
		}
		if !found {
			return 0, fmt.Errorf("time span %q: unknown unit %q (want us, ms, s, min, h, d)", s, unit)
		}
	}
	return total, nil
}

// durationFlag is a flag.Value for time spans.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseTimespan(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}
