package allow

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Files are the databases Resolve reads; the zero value means the system's.
type Files struct {
	Passwd, Group, SubUID string // "": /etc/passwd, /etc/group, /etc/subuid
}

func (f Files) passwd() string { return or(f.Passwd, "/etc/passwd") }
func (f Files) group() string  { return or(f.Group, "/etc/group") }
func (f Files) subuid() string { return or(f.SubUID, "/etc/subuid") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Matcher is a resolved allow list: the uids it admits (the owner's among
// them), the subordinate ranges of those users, and the networks it admits.
// Its zero value admits nobody but uid 0 as the owner; build it with Resolve.
type Matcher struct {
	Owner uint32
	Value string // the canonical list, for log lines
	// Unresolved lists the entries that name nobody (no such user or
	// group, a group without members): they admit no one.
	Unresolved []string

	uids map[uint32]string // uid -> the entry that admits it
	subs []subRange
	nets []netip.Prefix
}

// subRange is one line of /etc/subuid of an admitted user: the uids of that
// user's rootless containers as the host sees them.
type subRange struct {
	start, count uint64
	user         string
}

// Resolve reads the user, group and subordinate uid databases once and
// returns the Matcher of l for a proxy running as owner (always admitted,
// with its subordinate uids). User names not in the passwd file are looked
// up through NSS (os/user); group members come from the files only. An entry
// that names nobody is listed in Unresolved and admits no one; an error
// means a database could not be read (a missing /etc/subuid is none).
func Resolve(l List, owner uint32, db Files) (*Matcher, error) {
	users, err := readPasswd(db.passwd())
	if err != nil {
		return nil, err
	}
	groups, err := readGroup(db.group())
	if err != nil {
		return nil, err
	}
	m := &Matcher{Owner: owner, Value: l.String(), uids: map[uint32]string{owner: "owner"}}
	admit := func(uid uint32, why string) {
		if _, ok := m.uids[uid]; !ok {
			m.uids[uid] = why
		}
	}
	for _, e := range l {
		switch e.Kind {
		case User:
			if u, ok := users.byName[e.Name]; ok {
				admit(u.uid, e.Name)
				continue
			}
			if u, err := user.Lookup(e.Name); err == nil {
				if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
					admit(uint32(n), e.Name)
					continue
				}
			}
			m.Unresolved = append(m.Unresolved, fmt.Sprintf("no user named %q", e.Name))
		case UID:
			admit(e.UID, e.String())
		case Group:
			g, ok := groups[e.Name]
			if !ok {
				m.Unresolved = append(m.Unresolved, fmt.Sprintf("no group named %q", e.Name))
				continue
			}
			n := 0
			for _, u := range users.list {
				if u.gid == g.gid || g.members[u.name] {
					admit(u.uid, e.String())
					n++
				}
			}
			if n == 0 {
				m.Unresolved = append(m.Unresolved, fmt.Sprintf("group %q has no members", e.Name))
			}
		case Address:
			m.nets = append(m.nets, e.Prefix)
		}
	}
	subs, err := readSubUID(db.subuid())
	if err != nil {
		return nil, err
	}
	for _, s := range subs {
		// a line names its user by name or by uid
		uid, ok := uint32(0), false
		if u, found := users.byName[s.user]; found {
			uid, ok = u.uid, true
		} else if n, err := strconv.ParseUint(s.user, 10, 32); err == nil {
			uid, ok = uint32(n), true
		}
		if why, admitted := m.uids[uid]; ok && admitted {
			// "@web (cross)": a group names no user by itself
			label := why
			if strings.HasPrefix(why, "@") {
				label = why + " (" + s.user + ")"
			}
			s.user = label
			m.subs = append(m.subs, s)
		}
	}
	return m, nil
}

// UID reports whether uid is admitted, and by what: "owner", the entry that
// names it, or "subordinate uid of ENTRY".
func (m *Matcher) UID(uid uint32) (string, bool) {
	if why, ok := m.uids[uid]; ok {
		return why, true
	}
	if uid == m.Owner {
		return "owner", true
	}
	for _, s := range m.subs {
		if u := uint64(uid); u >= s.start && u-s.start < s.count {
			return "subordinate uid of " + s.user, true
		}
	}
	return "", false
}

// Addr reports whether a client connecting from a is admitted by an address
// entry, and which.
func (m *Matcher) Addr(a netip.Addr) (string, bool) {
	// a zoned address (fe80::1%eth0) never matches a prefix: the zone goes
	a = a.WithZone("").Unmap()
	for _, p := range m.nets {
		if p.Contains(a) {
			if p.IsSingleIP() {
				return p.Addr().String(), true
			}
			return p.String(), true
		}
	}
	return "", false
}

// HasAddresses reports whether any entry is an address: without one, a
// client that is not a socket of this host is refused without a look at
// its address.
func (m *Matcher) HasAddresses() bool { return len(m.nets) > 0 }

type passwdUser struct {
	name     string
	uid, gid uint32
}

type passwdDB struct {
	list   []passwdUser
	byName map[string]passwdUser
}

// readPasswd reads name:pw:uid:gid:… lines; malformed lines are skipped,
// as getpwent(3) does.
func readPasswd(path string) (passwdDB, error) {
	db := passwdDB{byName: make(map[string]passwdUser)}
	err := eachLine(path, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil || f[0] == "" {
			return
		}
		u := passwdUser{name: f[0], uid: uint32(uid), gid: uint32(gid)}
		if _, dup := db.byName[u.name]; !dup {
			db.byName[u.name] = u
			db.list = append(db.list, u)
		}
	}, false)
	return db, err
}

type groupEntry struct {
	gid     uint32
	members map[string]bool
}

// readGroup reads name:pw:gid:member,member lines.
func readGroup(path string) (map[string]groupEntry, error) {
	groups := make(map[string]groupEntry)
	err := eachLine(path, func(f []string) {
		if len(f) < 4 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || f[0] == "" {
			return
		}
		if _, dup := groups[f[0]]; dup {
			return
		}
		g := groupEntry{gid: uint32(gid), members: make(map[string]bool)}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" {
				g.members[m] = true
			}
		}
		groups[f[0]] = g
	}, false)
	return groups, err
}

// readSubUID reads user:start:count lines; a missing file holds none.
func readSubUID(path string) ([]subRange, error) {
	var out []subRange
	err := eachLine(path, func(f []string) {
		if len(f) != 3 {
			return
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return
		}
		out = append(out, subRange{start: start, count: count, user: f[0]})
	}, true)
	return out, err
}

// eachLine calls fn with the colon-separated fields of every line of path
// that is not empty or a comment.
func eachLine(path string, fn func([]string), missingOK bool) error {
	f, err := os.Open(path)
	if err != nil {
		if missingOK && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
