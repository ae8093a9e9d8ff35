package annotation

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Key is the OCI annotation that marks a container for activation.
const Key = "bro.activate"

// PortRule is the grammar of one entry of the bro.activate annotation, quoted in
// every validation error.
const PortRule = "[[ip:]hostPort:]containerPort[/tcp|/udp], ports 1-65535, IPv6 in brackets"

// DefaultListenIP is where the host side listens when an entry names no address:
// loopback only, never every interface.
var DefaultListenIP = netip.MustParseAddr("127.0.0.1")

// Port is one parsed entry of the bro.activate annotation.
type Port struct {
	ListenIP      netip.Addr // host address the socket unit listens on
	HostPort      uint16     // host port the socket unit listens on
	ContainerPort uint16     // port dialled on 127.0.0.1 inside the container
	Proto         string     // "tcp" or "udp"
}

// Listen is the host address in the form systemd's ListenStream= and net.Dial take.
func (p Port) Listen() string {
	return netip.AddrPortFrom(p.ListenIP, p.HostPort).String()
}

// Target is the address dialled inside the container's network namespace.
func (p Port) Target() string {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.ContainerPort).String()
}

// Name is the socket's FileDescriptorName=, which bro-proxy maps to Target.
func (p Port) Name() string {
	return fmt.Sprintf("%s-%d", p.Proto, p.ContainerPort)
}

// String is the canonical form of the entry; ParsePorts(p.String()) returns p.
func (p Port) String() string {
	return fmt.Sprintf("%s:%d/%s", p.Listen(), p.ContainerPort, p.Proto)
}

// MarshalText writes the canonical entry (records store ports this way).
func (p Port) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads one entry of the annotation grammar.
func (p *Port) UnmarshalText(b []byte) error {
	ports, err := ParsePorts(string(b))
	if err != nil {
		return err
	}
	if len(ports) != 1 {
		return fmt.Errorf("port %q: want exactly one entry", b)
	}
	*p = ports[0]
	return nil
}

// ParsePorts parses a bro.activate value: one or more entries, separated by
// commas or white space, of the form [[ip:]hostPort:]containerPort[/tcp|/udp], as Podman's PublishPort=.
// A missing ip is 127.0.0.1, a missing hostPort is containerPort, a missing
// protocol is tcp. It returns an *Error naming the value and the rule
// for anything else, including an empty value, an empty entry and two entries
// listening on the same host address, port and protocol.
func ParsePorts(value string) ([]Port, error) {
	if strings.TrimSpace(value) == "" {
		return nil, &Error{Value: value, Reason: "empty value"}
	}
	var ports []Port
	seen := make(map[string]string)
	for _, entry := range splitEntries(value) {
		p, err := parseEntry(entry)
		if err != nil {
			return nil, &Error{Value: value, Entry: entry, Reason: err.Error()}
		}
		key := p.Listen() + "/" + p.Proto
		if prev, dup := seen[key]; dup {
			return nil, &Error{Value: value, Entry: entry,
				Reason: fmt.Sprintf("listens on %s like entry %q", key, prev)}
		}
		seen[key] = entry
		ports = append(ports, p)
	}
	return ports, nil
}

// splitEntries splits on commas and on runs of white space. Podman 4.3 reads
// --annotation as a comma-separated list (a pflag StringSlice), so on such a
// Podman `Annotation=bro.activate=5432,8080` never reaches the container
// whole; `Annotation="bro.activate=5432 8080"` does. An empty entry between
// two commas is kept, and refused.
func splitEntries(value string) []string {
	var out []string
	for _, piece := range strings.Split(value, ",") {
		f := strings.Fields(piece)
		if len(f) == 0 {
			out = append(out, "")
		}
		out = append(out, f...)
	}
	return out
}

func parseEntry(entry string) (Port, error) {
	p := Port{ListenIP: DefaultListenIP, Proto: "tcp"}
	if entry == "" {
		return p, fmt.Errorf("empty entry")
	}
	if i := strings.LastIndexByte(entry, '/'); i >= 0 {
		switch proto := entry[i+1:]; proto {
		case "tcp", "udp":
			p.Proto = proto
		default:
			return p, fmt.Errorf("protocol %q is not tcp or udp", proto)
		}
		entry = entry[:i]
	}
	// An IPv6 address is bracketed; split it off before counting colons.
	if strings.HasPrefix(entry, "[") {
		end := strings.IndexByte(entry, ']')
		if end < 0 {
			return p, fmt.Errorf("address %q has no closing bracket", entry)
		}
		ip, err := netip.ParseAddr(entry[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return p, fmt.Errorf("address %q is not an IPv6 address", entry[:end+1])
		}
		p.ListenIP = ip
		rest := entry[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return p, fmt.Errorf("address %q must be followed by :hostPort:containerPort", entry[:end+1])
		}
		fields := strings.Split(rest[1:], ":")
		if len(fields) != 2 {
			return p, fmt.Errorf("address %q must be followed by :hostPort:containerPort", entry[:end+1])
		}
		return p, p.setPorts(fields[0], fields[1])
	}
	fields := strings.Split(entry, ":")
	switch len(fields) {
	case 1:
		return p, p.setPorts("", fields[0])
	case 2:
		return p, p.setPorts(fields[0], fields[1])
	case 3:
		ip, err := netip.ParseAddr(fields[0])
		if err != nil || !ip.Is4() {
			return p, fmt.Errorf("address %q is not an IPv4 address (put IPv6 in brackets)", fields[0])
		}
		p.ListenIP = ip
		return p, p.setPorts(fields[1], fields[2])
	default:
		return p, fmt.Errorf("too many colons (put IPv6 in brackets)")
	}
}

func (p *Port) setPorts(host, container string) error {
	c, err := parsePortNumber("container port", container)
	if err != nil {
		return err
	}
	p.ContainerPort, p.HostPort = c, c
	if host != "" {
		h, err := parsePortNumber("host port", host)
		if err != nil {
			return err
		}
		p.HostPort = h
	}
	return nil
}

func parsePortNumber(what, s string) (uint16, error) {
	// ParseUint alone accepts "+1" and leading zeros are harmless, but keep
	// the accepted set to plain decimal digits so the value round-trips.
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s %q is not a number", what, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %s is out of range 1-65535", what, s)
	}
	return uint16(n), nil
}

// FormatPorts is the inverse of ParsePorts: the canonical, comma-separated
// value. A quadlet's Annotation= takes SpacedPorts instead.
func FormatPorts(ports []Port) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// SpacedPorts is FormatPorts with spaces between the entries: what goes into
// a quadlet, since Podman 4.3 cuts an --annotation value at its commas.
func SpacedPorts(ports []Port) string {
	return strings.ReplaceAll(FormatPorts(ports), ",", " ")
}

// Error is a malformed bro.activate value.
type Error struct {
	Value  string // the whole annotation value
	Entry  string // the offending entry, if one
	Reason string
}

func (e *Error) Error() string {
	if len(splitEntries(e.Value)) > 1 {
		return fmt.Sprintf("invalid %s=%q: entry %q: %s; want %s", Key, e.Value, e.Entry, e.Reason, PortRule)
	}
	return fmt.Sprintf("invalid %s=%q: %s; want %s", Key, e.Value, e.Reason, PortRule)
}
