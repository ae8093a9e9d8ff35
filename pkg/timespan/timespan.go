// Package timespan reads and writes systemd time spans (systemd.time(7)):
// "30s", "5min", "1h 30min", "500ms", a bare number of seconds. Every
// duration Brothaman-Go reads, from a command line or an annotation, goes
// through Parse, so bro-activate --idle-stop and Annotation=bro.idle-stop
// take the same words as systemd's own settings.
//
// Pure Go, no privileges.
package timespan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// units in the order Format uses them, each with the names Parse accepts
// (systemd's, plus Go's "m" and "µs").
var units = []struct {
	names []string
	d     time.Duration
}{
	{[]string{"w", "weeks", "week"}, 7 * 24 * time.Hour},
	{[]string{"d", "days", "day"}, 24 * time.Hour},
	{[]string{"h", "hours", "hour", "hr"}, time.Hour},
	{[]string{"min", "minutes", "minute", "m"}, time.Minute},
	{[]string{"s", "seconds", "second", "sec", ""}, time.Second},
	{[]string{"ms", "msec"}, time.Millisecond},
	{[]string{"us", "usec", "µs"}, time.Microsecond},
	{[]string{"ns", "nsec"}, time.Nanosecond},
}

// Parse reads a time span: one or more NUMBER[UNIT] terms, optionally
// separated by spaces, summed ("1h 30min", "1m30s"); a term without a unit
// is seconds. It returns an error naming the value and the rule for an
// empty or negative span, an unknown unit, or a span beyond 290 years.
func Parse(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("time span %q: empty", s)
	}
	var total, frac float64 // total: for the overflow check
	var exact int64
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
		num := rest[:i]
		n, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("time span %q: %q is not a number", s, num)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r == '.' || (r >= '0' && r <= '9') })
		if j < 0 {
			j = len(rest)
		}
		unit := rest[:j]
		rest = rest[j:]
		d, ok := unitOf(unit)
		if !ok {
			return 0, fmt.Errorf("time span %q: unknown unit %q (want ns, us, ms, s, min, h, d, w)", s, unit)
		}
		// whole numbers exactly (float64 loses nanoseconds past 2^53)
		var term float64
		if i, err := strconv.ParseInt(num, 10, 64); err == nil && i <= math.MaxInt64/int64(d) {
			term = float64(i * int64(d))
			exact += i * int64(d)
		} else {
			term = n * float64(d)
			frac += term
		}
		total += term
	}
	if total >= math.MaxInt64 || exact < 0 {
		return 0, fmt.Errorf("time span %q: too long", s)
	}
	return time.Duration(exact) + time.Duration(frac), nil
}

func unitOf(name string) (time.Duration, bool) {
	for _, u := range units {
		for _, n := range u.names {
			if n == name {
				return u.d, true
			}
		}
	}
	return 0, false
}

// Format writes d the way systemd prints spans: "0", "500ms", "5min",
// "1h 30s". Parse(Format(d)) == d for every d ≥ 0.
func Format(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.names[0])
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}
