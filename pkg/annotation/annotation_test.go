package annotation

import (
	"net/netip"
	"testing"
)

func TestParsePorts(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name  string
		value string
		want  []Port
	}{
		{"container port only", "5432", []Port{{lo, 5432, 5432, "tcp"}}},
		{"host and container", "15432:5432", []Port{{lo, 15432, 5432, "tcp"}}},
		{"ipv4 host and container", "127.0.0.2:80:8080", []Port{{netip.MustParseAddr("127.0.0.2"), 80, 8080, "tcp"}}},
		{"udp", "53/udp", []Port{{lo, 53, 53, "udp"}}},
		{"explicit tcp", "8080/tcp", []Port{{lo, 8080, 8080, "tcp"}}},
		{"ipv6", "[::1]:5432:5432", []Port{{netip.MustParseAddr("::1"), 5432, 5432, "tcp"}}},
		{"ipv6 udp", "[::1]:53:5353/udp", []Port{{netip.MustParseAddr("::1"), 53, 5353, "udp"}}},
		{"list", "5432, 8080:80/tcp,53/udp", []Port{
			{lo, 5432, 5432, "tcp"}, {lo, 8080, 80, "tcp"}, {lo, 53, 53, "udp"}}},
		{"space separated (Podman 4.3 splits --annotation on commas)", "5432 8080:80", []Port{{lo, 5432, 5432, "tcp"}, {lo, 8080, 80, "tcp"}}},
		{"same port both protocols", "53/tcp,53/udp", []Port{{lo, 53, 53, "tcp"}, {lo, 53, 53, "udp"}}},
		{"bounds", "1:65535", []Port{{lo, 1, 65535, "tcp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePorts(tt.value)
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.value, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParsePorts(%q) = %v; want %v", tt.value, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("ParsePorts(%q)[%d] = %+v; want %+v", tt.value, i, got[i], tt.want[i])
				}
			}
			again, err := ParsePorts(FormatPorts(got))
			if err != nil || FormatPorts(again) != FormatPorts(got) {
				t.Errorf("round trip of %q: got %q, %v", FormatPorts(got), FormatPorts(again), err)
			}
		})
	}
}

func TestParsePortsErrors(t *testing.T) {
	const rule = "; want " + PortRule
	tests := []struct{ value, want string }{
		{"", `invalid bro.activate="": empty value` + rule},
		{"abc", `invalid bro.activate="abc": container port "abc" is not a number` + rule},
		{"0", `invalid bro.activate="0": container port 0 is out of range 1-65535` + rule},
		{"65536", `invalid bro.activate="65536": container port 65536 is out of range 1-65535` + rule},
		{"-1", `invalid bro.activate="-1": container port "-1" is not a number` + rule},
		{"+80", `invalid bro.activate="+80": container port "+80" is not a number` + rule},
		{"99999999999999999999", `invalid bro.activate="99999999999999999999": container port 99999999999999999999 is out of range 1-65535` + rule},
		{"5432/sctp", `invalid bro.activate="5432/sctp": protocol "sctp" is not tcp or udp` + rule},
		{"5432,", `invalid bro.activate="5432,": entry "": empty entry` + rule},
		{"5432,,80", `invalid bro.activate="5432,,80": entry "": empty entry` + rule},
		{"x:80", `invalid bro.activate="x:80": host port "x" is not a number` + rule},
		{"1.2.3:80:80", `invalid bro.activate="1.2.3:80:80": address "1.2.3" is not an IPv4 address (put IPv6 in brackets)` + rule},
		{"::1:80:80", `invalid bro.activate="::1:80:80": too many colons (put IPv6 in brackets)` + rule},
		{"[::1:80:80", `invalid bro.activate="[::1:80:80": address "[::1:80:80" has no closing bracket` + rule},
		{"[127.0.0.1]:80:80", `invalid bro.activate="[127.0.0.1]:80:80": address "[127.0.0.1]" is not an IPv6 address` + rule},
		{"[::1]:80", `invalid bro.activate="[::1]:80": address "[::1]" must be followed by :hostPort:containerPort` + rule},
		{"5432,5432", `invalid bro.activate="5432,5432": entry "5432": listens on 127.0.0.1:5432/tcp like entry "5432"` + rule},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			_, err := ParsePorts(tt.value)
			if err == nil {
				t.Fatalf("ParsePorts(%q) succeeded; want error %q", tt.value, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ParsePorts(%q) error\n got %s\nwant %s", tt.value, err, tt.want)
			}
		})
	}
}

func TestPortText(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"5432", "127.0.0.1:5432:5432/tcp"},
		{"[::1]:53:5353/udp", "[::1]:53:5353/udp"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var p Port
			if err := p.UnmarshalText([]byte(tt.text)); err != nil {
				t.Fatal(err)
			}
			b, _ := p.MarshalText()
			if string(b) != tt.want {
				t.Errorf("MarshalText(UnmarshalText(%q)) = %q; want %q", tt.text, b, tt.want)
			}
		})
	}
	var p Port
	if err := p.UnmarshalText([]byte("80,81")); err == nil || err.Error() != `port "80,81": want exactly one entry` {
		t.Errorf("UnmarshalText(80,81) = %v; want the one-entry error", err)
	}
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"5432", "127.0.0.1:5432:5432/tcp", "[::1]:53:53/udp", "1,2,3", "a:b:c:d", "[", "/", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ports, err := ParsePorts(value)
		if err != nil {
			if len(ports) != 0 {
				t.Fatalf("ParsePorts(%q) returned ports with an error", value)
			}
			return
		}
		for _, p := range ports {
			if p.HostPort == 0 || p.ContainerPort == 0 || (p.Proto != "tcp" && p.Proto != "udp") || !p.ListenIP.IsValid() {
				t.Fatalf("ParsePorts(%q) = invalid port %+v", value, p)
			}
		}
		again, err := ParsePorts(FormatPorts(ports))
		if err != nil || FormatPorts(again) != FormatPorts(ports) {
			t.Fatalf("round trip of %q: %q, %v", FormatPorts(ports), FormatPorts(again), err)
		}
	})
}
