package quadlet

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // f.String()
	}{
		{"empty", "", ""},
		{"comments only", "# a\n; b\n\n", ""},
		{"section and keys", "[Container]\nImage=x\nAnnotation=a=1\nAnnotation=b=2\n",
			"[Container]\nImage=x\nAnnotation=a=1\nAnnotation=b=2\n"},
		{"whitespace around", "  [Container]  \n  Key  =   value with  spaces  \n",
			"[Container]\nKey=value with  spaces\n"},
		{"crlf", "[Container]\r\nImage=x\r\n", "[Container]\nImage=x\n"},
		{"bom", "\ufeff[Container]\nImage=x\n", "[Container]\nImage=x\n"},
		{"continuation joins as quadlet", "[Container]\nExec=a \\\n  b\\\nc\n", "[Container]\nExec=a bc\n"},
		{"comment inside continuation", "[Container]\nExec=a \\\n# skipped\nb\n", "[Container]\nExec=a b\n"},
		{"continuation on last line", "[Container]\nExec=a\\", "[Container]\nExec=a\n"},
		{"crlf continuation", "[Container]\r\nExec=a \\\r\nb\r\n", "[Container]\nExec=a b\n"},
		{"repeated section merges", "[A]\nk=1\n[B]\nk=2\n[A]\nk=3\n", "[A]\nk=1\nk=3\n\n[B]\nk=2\n"},
		{"no final newline", "[A]\nk=v", "[A]\nk=v\n"},
		{"value with equals", "[A]\nAnnotation=bro.activate=5432\n", "[A]\nAnnotation=bro.activate=5432\n"},
		{"header with trailing space", "[A] \t\nk=v\n", "[A]\nk=v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.text))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.text, err)
			}
			if got := f.String(); got != tt.want {
				t.Errorf("Parse(%q).String() = %q; want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"key before section", "Image=x\n", `line 1 "Image=x": key=value before the first [section]`},
		{"garbage", "[A]\nnot a pair\n", `line 2 "not a pair": not a [section], key=value pair or comment`},
		{"empty key", "[A]\n=v\n", `line 2 "=v": empty key`},
		{"empty section name", "[]\n", `line 1 "[]": section name must not be empty or contain [, ] or control characters`},
		{"nested bracket", "[[A]\n", `line 1 "[[A]": section name must not be empty or contain [, ] or control characters`},
		{"unclosed header", "[A\n", `line 1 "[A": not a [section], key=value pair or comment`},
		{"continued garbage keeps first line", "[A]\nfoo\\\nbar\n", `line 2 "foobar": not a [section], key=value pair or comment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error = %v; want a *ParseError", tt.text, err)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%q) error = %q; want %q", tt.text, err, tt.want)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	data := []byte("[A]\n" + strings.Repeat("#", MaxFileSize))
	_, err := Parse(data)
	want := "file is 1048580 bytes, larger than the limit of 1048576 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("Parse(%d bytes) error = %v; want %q", len(data), err, want)
	}
}

func TestLookup(t *testing.T) {
	f, err := Parse([]byte("[Container]\nAnnotation=a=1\nAnnotation=\nAnnotation=b=2\nAnnotation=c=3\nImage=x\nImage=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.LookupAll("Container", "Annotation"), []string{"b=2", "c=3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("LookupAll after reset = %q; want %q", got, want)
	}
	if got, ok := f.Lookup("Container", "Image"); got != "y" || !ok {
		t.Errorf("Lookup(Image) = %q, %t; want \"y\", true", got, ok)
	}
	if got, ok := f.Lookup("Service", "Image"); got != "" || ok {
		t.Errorf("Lookup in a missing section = %q, %t; want \"\", false", got, ok)
	}
}

func TestKeyValues(t *testing.T) {
	f, err := Parse([]byte(`[Container]
Annotation=bro.activate=5432 other="a b" 'x=y z'
Annotation="bro.activate=127.0.0.1:15432:5432" flag
Annotation=esc=a\x41\tb\sc
`))
	if err != nil {
		t.Fatal(err)
	}
	got, order := f.KeyValues("Container", "Annotation")
	want := map[string]string{"bro.activate": "127.0.0.1:15432:5432", "other": "a b", "x": "y z", "flag": "", "esc": "aA\tb c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KeyValues = %q; want %q", got, want)
	}
	if wantOrder := []string{"bro.activate", "other", "x", "flag", "esc"}; !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("KeyValues order = %q; want %q", order, wantOrder)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a  b\tc ", []string{"a", "b", "c"}},
		{`"a b" c`, []string{"a b", "c"}},
		{`k="a b"`, []string{"k=a b"}},
		{`'it"s'`, []string{`it"s`}},
		{`a\ b`, []string{"a b"}},
		{`"unterminated`, []string{"unterminated"}},
		{`\q`, []string{"q"}},
		{`\101\u00e9`, []string{"Aé"}},
		{`""`, []string{""}},
		{`trailing\`, []string{`trailing\`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := SplitWords(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitWords(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	const rule = "; want " + NameRule
	for _, ok := range []string{"pg", "my-db_1", "a.b", "x:y", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v; want nil", ok, err)
		}
	}
	tests := []struct{ name, want string }{
		{"", `invalid quadlet name "": empty` + rule},
		{"a/b", `invalid quadlet name "a/b": contains "/"` + rule},
		{"../x", `invalid quadlet name "../x": contains "/"` + rule},
		{"a..b", `invalid quadlet name "a..b": contains ".."` + rule},
		{"-x", `invalid quadlet name "-x": starts with '-'` + rule},
		{".x", `invalid quadlet name ".x": starts with '.'` + rule},
		{"a@b", `invalid quadlet name "a@b": contains '@'` + rule},
		{"a b", `invalid quadlet name "a b": contains ' '` + rule},
		{"é", `invalid quadlet name "é": contains 'é'` + rule},
		{strings.Repeat("a", MaxNameLen+1), `invalid quadlet name "` + strings.Repeat("a", MaxNameLen+1) + `": 201 characters long` + rule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			var ne *NameError
			if !errors.As(err, &ne) || err.Error() != tt.want {
				t.Errorf("ValidateName(%q) = %v; want %q", tt.name, err, tt.want)
			}
		})
	}
}
