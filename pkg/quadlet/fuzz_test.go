package quadlet

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts is well
// formed, and that formatting and parsing again gives the same file.
// Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[Container]\nImage=x\nAnnotation=bro.activate=5432\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		trailingBackslash := false
		for _, s := range file.Sections {
			if !sectionNameValid(s.Name) {
				t.Fatalf("accepted section name %q", s.Name)
			}
			for _, e := range s.Entries {
				if e.Key == "" || strings.ContainsAny(e.Key, "=\n") || strings.TrimSpace(e.Key) != e.Key {
					t.Fatalf("accepted key %q", e.Key)
				}
				if strings.Contains(e.Value, "\n") {
					t.Fatalf("value %q holds a newline", e.Value)
				}
				// A continuation can leave a value ending in a backslash or
				// whitespace, which a single line cannot hold.
				trailingBackslash = trailingBackslash || strings.HasSuffix(e.Value, `\`) ||
					strings.TrimRight(e.Value, " \t\r\v\f") != e.Value
				SplitWords(e.Value) // must not panic
			}
		}
		if trailingBackslash {
			return // would read back as a continuation; see File.String
		}
		again, err := Parse([]byte(file.String()))
		if err != nil {
			t.Fatalf("Parse(String()) of %q: %v", file.String(), err)
		}
		strip := func(f *File) *File {
			for _, s := range f.Sections {
				for i := range s.Entries {
					s.Entries[i].Line = 0
				}
			}
			return f
		}
		if !reflect.DeepEqual(strip(file), strip(again)) {
			t.Fatalf("round trip of %q: got %q", file.String(), again.String())
		}
	})
}
