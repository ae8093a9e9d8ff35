package allow

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/annotation"
)

// Key is the quadlet annotation that holds the allow list; bro-activate
// --allow takes the same value.
const Key = "bro.allow"

// Rule is the grammar of one entry, quoted in every validation error.
const Rule = "NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces"

// nameRE is a user or group name as useradd(8) and groupadd(8) take them
// (Debian's relaxed default) with the trailing $ of machine accounts.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,30}\$?$`)

// Kind is what an Entry names.
type Kind int

const (
	User    Kind = iota // a user name
	UID                 // uid:N
	Group               // @GROUP
	Address             // an address or a network, for remote clients
)

// Entry is one parsed entry of an allow list.
type Entry struct {
	Kind   Kind
	Name   string       // User, Group
	UID    uint32       // UID
	Prefix netip.Prefix // Address: a single address is a /32 or /128
}

// String is the canonical form of the entry; Parse(e.String()) returns e.
func (e Entry) String() string {
	switch e.Kind {
	case UID:
		return "uid:" + strconv.FormatUint(uint64(e.UID), 10)
	case Group:
		return "@" + e.Name
	case Address:
		if e.Prefix.IsSingleIP() {
			return e.Prefix.Addr().String()
		}
		return e.Prefix.String()
	}
	return e.Name
}

// List is a parsed allow list, in the order written.
type List []Entry

// String is the canonical value: entries joined by commas (what bro-proxy
// --allow gets on its command line).
func (l List) String() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.String()
	}
	return strings.Join(s, ",")
}

// Error is a malformed allow list.
type Error struct {
	Value  string // the whole value
	Entry  string // the offending entry, if the value has several
	Reason string
}

func (e *Error) Error() string {
	if len(split(e.Value)) > 1 {
		return fmt.Sprintf("invalid %s=%q: entry %q: %s; want %s", Key, e.Value, e.Entry, e.Reason, Rule)
	}
	return fmt.Sprintf("invalid %s=%q: %s; want %s", Key, e.Value, e.Reason, Rule)
}

// Parse parses an allow list: entries separated by commas or white space,
// each a user NAME, uid:N (a decimal uid, 0-4294967294), @GROUP (the users
// whose primary or supplementary group it is), or an IP address or network
// (IP/PREFIX, without host bits and without a zone) that admits clients
// connecting from it. It returns an *Error naming the value, the entry and
// Rule for anything else, including an empty value and an empty entry.
// Whether the names exist is Resolve's business.
func Parse(value string) (List, error) {
	if strings.TrimSpace(value) == "" {
		return nil, &Error{Value: value, Reason: "empty value"}
	}
	var l List
	for _, entry := range split(value) {
		e, err := parseEntry(entry)
		if err != nil {
			return nil, &Error{Value: value, Entry: entry, Reason: err.Error()}
		}
		l = append(l, e)
	}
	return l, nil
}

// split cuts on commas and runs of white space, as bro.activate does (Podman
// 4.3 cuts an --annotation value at its commas: spaces pass it on whole). An
// empty entry between two commas is kept, and refused.
func split(value string) []string {
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

func parseEntry(s string) (Entry, error) {
	switch {
	case s == "":
		return Entry{}, fmt.Errorf("empty entry")
	case strings.HasPrefix(s, "uid:"):
		n := s[len("uid:"):]
		if n == "" || strings.TrimLeft(n, "0123456789") != "" {
			return Entry{}, fmt.Errorf("uid %q is not a number", n)
		}
		u, err := strconv.ParseUint(n, 10, 32)
		if err != nil || u == 1<<32-1 { // (uid_t)-1 is "no uid"
			return Entry{}, fmt.Errorf("uid %s is out of range 0-4294967294", n)
		}
		return Entry{Kind: UID, UID: uint32(u)}, nil
	case strings.HasPrefix(s, "@"):
		if !nameRE.MatchString(s[1:]) {
			return Entry{}, fmt.Errorf("%q is not a group name", s[1:])
		}
		return Entry{Kind: Group, Name: s[1:]}, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Entry{}, fmt.Errorf("%q is not a network (IP/PREFIX)", s)
		}
		if p != p.Masked() {
			return Entry{}, fmt.Errorf("network %s has host bits set (want %s)", s, p.Masked())
		}
		return Entry{Kind: Address, Prefix: unmapPrefix(p)}, nil
	case strings.Contains(s, ":") || looksNumeric(s):
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Entry{}, fmt.Errorf("%q is not an IP address", s)
		}
		if a.Zone() != "" {
			return Entry{}, fmt.Errorf("address %s has a zone", s)
		}
		a = a.Unmap()
		return Entry{Kind: Address, Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	case nameRE.MatchString(s):
		return Entry{Kind: User, Name: s}, nil
	}
	return Entry{}, fmt.Errorf("%q is not a user name", s)
}

// looksNumeric: digits and dots only, an IPv4 address or a typo of one
// (a user name of digits alone is refused by useradd too).
func looksNumeric(s string) bool { return strings.Trim(s, "0123456789.") == "" }

// unmapPrefix turns ::ffff:a.b.c.d/N (N >= 96) into a.b.c.d/(N-96): clients
// are compared unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// CheckMode refuses an allow list together with a bro.mode that puts no
// proxy in the path (handoff, direct): nothing would check who connects.
func CheckMode(mode string) error {
	switch mode {
	case annotation.ModeHandoff:
		return fmt.Errorf("%s cannot be used with %s=%s: handoff passes the socket into the container and no proxy checks who connects; remove one of them", Key, annotation.ModeKey, mode)
	case annotation.ModeDirect:
		return fmt.Errorf("%s cannot be used with %s=%s: the container takes systemd's socket itself and no proxy checks who connects; remove one of them", Key, annotation.ModeKey, mode)
	}
	return nil
}
