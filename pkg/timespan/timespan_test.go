package timespan

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30s", 30 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"5min", 5 * time.Minute, ""},
		{"5m", 5 * time.Minute, ""},
		{"1h 30min", 90 * time.Minute, ""},
		{"1h 30s", time.Hour + 30*time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"2 minutes", 2 * time.Minute, ""},
		{"10", 10 * time.Second, ""},
		{"0", 0, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"2d", 48 * time.Hour, ""},
		{"100us", 100 * time.Microsecond, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"1us 5ns", 1005 * time.Nanosecond, ""},
		{"", 0, `time span "": empty`},
		{"abc", 0, `time span "abc": want a number before "abc"`},
		{"-5s", 0, `time span "-5s": want a number before "-5s"`},
		{"5 fortnights", 0, `time span "5 fortnights": unknown unit "fortnights" (want ns, us, ms, s, min, h, d, w)`},
		{"1..2s", 0, `time span "1..2s": "1..2" is not a number`},
		{"999999999999d", 0, `time span "999999999999d": too long`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Parse(%q) error = %v; want %s", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{500 * time.Millisecond, "500ms"},
		{5 * time.Minute, "5min"},
		{time.Hour + 30*time.Second, "1h 30s"},
		{26*time.Hour + 1500*time.Microsecond, "1d 2h 1ms 500us"},
		{8*24*time.Hour + 7, "1w 1d 7ns"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			got := Format(tt.d)
			if got != tt.want {
				t.Fatalf("Format(%v) = %q; want %q", tt.d, got, tt.want)
			}
			if back, err := Parse(got); err != nil || back != tt.d {
				t.Fatalf("Parse(Format(%v)) = %v, %v; want %v", tt.d, back, err, tt.d)
			}
		})
	}
}

func FuzzTimespan(f *testing.F) {
	for _, s := range []string{"5min", "1h 30s", "500ms", "10", "1.5d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v: negative", s, d)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Fatalf("Parse(Format(%v)) = %v, %v", d, back, err)
		}
	})
}
