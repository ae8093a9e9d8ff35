package quadlet

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
)

// MaxFileSize bounds a quadlet or drop-in file. Real quadlets are a few hundred
// bytes; the bound keeps a generator, run at every daemon-reload, from reading
// a runaway file.
const MaxFileSize = 1 << 20

// File is a parsed unit file: its sections in file order. A section named
// twice is one section, as in systemd.
type File struct {
	Sections []*Section
}

// Section is one [Name] group with its entries in file order.
type Section struct {
	Name    string
	Entries []Entry
}

// Entry is one Key=Value line; Value has continuation lines joined.
type Entry struct {
	Key   string
	Value string
	Line  int // line number of the entry's first line, 1-based
}

// ParseError is a line that is no section header, key=value pair or comment.
type ParseError struct {
	Line   int
	Text   string
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d %q: %s", e.Line, e.Text, e.Reason)
}

// Parse parses unit-file text as quadlet's parser does: a UTF-8 byte order
// mark is skipped, CRLF is accepted, lines are trimmed, "#" and ";" start
// comments, and a line ending in a backslash continues on the next one.
// Like quadlet (and unlike systemd, which inserts a space) the continued
// lines are joined as they are, and comment lines inside a continuation are
// skipped. It returns an error wrapping *ParseError for a line that is none of
// the above, a key before any section, an invalid section or key name, and an
// error for data larger than MaxFileSize.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, larger than the limit of %d bytes", len(data), MaxFileSize)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	f := &File{}
	var cur *Section
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	pending, pendingLine := "", 0
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if isComment(line) {
			continue // also inside a continuation, as quadlet does
		}
		if strings.HasSuffix(line, `\`) && i != len(lines)-1 {
			if pending == "" {
				pendingLine = i + 1
			}
			pending += line[:len(line)-1]
			continue
		}
		line = strings.TrimSuffix(line, `\`)
		lineNr := i + 1
		if pending != "" {
			line, lineNr = pending+line, pendingLine
			pending = ""
		}
		if line == "" {
			continue // a lone backslash, as quadlet reads it: an empty line
		}
		var err error
		if cur, err = f.parseLine(cur, line, lineNr); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func isComment(line string) bool {
	return line == "" || line[0] == '#' || line[0] == ';'
}

func (f *File) parseLine(cur *Section, line string, nr int) (*Section, error) {
	if end := strings.IndexByte(line, ']'); line[0] == '[' && end > 0 &&
		strings.TrimRight(line[end+1:], " \t") == "" {
		name := line[1:end]
		if !sectionNameValid(name) {
			return nil, &ParseError{nr, line, "section name must not be empty or contain [, ] or control characters"}
		}
		return f.section(name, true), nil
	}
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return nil, &ParseError{nr, line, "not a [section], key=value pair or comment"}
	}
	if cur == nil {
		return nil, &ParseError{nr, line, "key=value before the first [section]"}
	}
	key := strings.TrimRightFunc(line[:eq], unicode.IsSpace)
	if key == "" {
		return nil, &ParseError{nr, line, "empty key"}
	}
	cur.Entries = append(cur.Entries, Entry{Key: key, Value: strings.TrimLeftFunc(line[eq+1:], unicode.IsSpace), Line: nr})
	return cur, nil
}

func sectionNameValid(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c == '[' || c == ']' || unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// section returns the named section, creating it at the end if create is set.
func (f *File) section(name string, create bool) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	if !create {
		return nil
	}
	s := &Section{Name: name}
	f.Sections = append(f.Sections, s)
	return s
}

// Merge appends the entries of a drop-in to f, section by section, as
// quadlet applies NAME.container.d/*.conf.
func (f *File) Merge(dropin *File) {
	for _, s := range dropin.Sections {
		dst := f.section(s.Name, true)
		dst.Entries = append(dst.Entries, s.Entries...)
	}
}

// LookupAll returns every value of key in section, in order. An empty
// assignment resets the list, as in systemd and quadlet.
func (f *File) LookupAll(section, key string) []string {
	s := f.section(section, false)
	if s == nil {
		return nil
	}
	var values []string
	for _, e := range s.Entries {
		if e.Key != key {
			continue
		}
		if e.Value == "" {
			values = nil
			continue
		}
		values = append(values, e.Value)
	}
	return values
}

// Lookup returns the last value of key in section, trailing whitespace left
// by a continuation trimmed as quadlet's Lookup does, and whether it is set.
func (f *File) Lookup(section, key string) (string, bool) {
	s := f.section(section, false)
	if s == nil {
		return "", false
	}
	for i := len(s.Entries) - 1; i >= 0; i-- {
		if s.Entries[i].Key == key {
			return strings.TrimRightFunc(s.Entries[i].Value, unicode.IsSpace), true
		}
	}
	return "", false
}

// String formats f as unit-file text; Parse(f.String()) gives f back, except
// for values ending in a backslash or whitespace (only continuations make
// those), which a single line cannot hold.
func (f *File) String() string {
	var b strings.Builder
	for i, s := range f.Sections {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s]\n", s.Name)
		for _, e := range s.Entries {
			fmt.Fprintf(&b, "%s=%s\n", e.Key, e.Value)
		}
	}
	return b.String()
}
