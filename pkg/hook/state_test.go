package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/record"
)

const idRule = "want 1-128 characters of [A-Za-z0-9_.-], not starting with '.'"

func TestReadStatePodmanSample(t *testing.T) {
	f, err := os.Open("testdata/podman-state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadState(f)
	if err != nil {
		t.Fatalf("ReadState(podman-state.json): %v", err)
	}
	const id = "5b1c7e0d4f6a3e2b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b"
	tests := []struct {
		field, got, want string
	}{
		{"ociVersion", s.Version, "1.0.2-dev"},
		{"id", s.ID, id},
		{"status", string(s.Status), "created"},
		{"bundle", s.Bundle, "/var/lib/containers/storage/overlay-containers/" + id + "/userdata"},
		{"annotation", s.Annotations[annotation.Key], "5432"},
		{"manager", s.Annotations["io.container.manager"], "libpod"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s: got %q; want %q", tt.field, tt.got, tt.want)
			}
		})
	}
	if s.Pid != 31337 {
		t.Errorf("pid: got %d; want 31337", s.Pid)
	}
}

func TestReadState(t *testing.T) {
	tests := []struct {
		name  string
		input string
		id    string
		pid   int
	}{
		{"minimal", `{"id":"abc","pid":1}`, "abc", 1},
		{"pid 0 for poststop", `{"ociVersion":"1.0.2","id":"abc","status":"stopped","pid":0}`, "abc", 0},
		{"pid missing for poststop", `{"id":"abc","status":"stopped"}`, "abc", 0},
		{"surrounding whitespace", "\n\t {\"id\":\"a.b_c-D\",\"pid\":7} \n", "a.b_c-D", 7},
		{"unknown fields", `{"id":"abc","pid":2,"future":{"x":[1,2]}}`, "abc", 2},
		{"longest id", `{"id":"` + strings.Repeat("f", 128) + `"}`, strings.Repeat("f", 128), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadState(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("ReadState(%q): %v", tt.input, err)
			}
			if s.ID != tt.id || s.Pid != tt.pid {
				t.Errorf("ReadState(%q) = id %q pid %d; want id %q pid %d", tt.input, s.ID, s.Pid, tt.id, tt.pid)
			}
		})
	}
}

func TestReadStateErrors(t *testing.T) {
	tests := []struct {
		name  string
		input io.Reader
		want  string
	}{
		{"empty stdin", strings.NewReader(""), "read container state: stdin is empty"},
		{"only whitespace", strings.NewReader(" \n\t\r\n"), "read container state: stdin is empty"},
		{"null", strings.NewReader("null"), "invalid container state: missing required property: id"},
		{"valid json without id", strings.NewReader(`{"ociVersion":"1.0.2","status":"created","pid":1234}`), "invalid container state: missing required property: id"},
		{"valid json without id or pid", strings.NewReader(`{}`), "invalid container state: missing required property: id"},
		{"empty id", strings.NewReader(`{"id":"","pid":1}`), "invalid container state: missing required property: id"},
		{"id traversal", strings.NewReader(`{"id":"../x","pid":1}`), `invalid container state: id "../x": ` + idRule},
		{"id hidden", strings.NewReader(`{"id":".hidden","pid":1}`), `invalid container state: id ".hidden": ` + idRule},
		{"id slash", strings.NewReader(`{"id":"a/b","pid":1}`), `invalid container state: id "a/b": ` + idRule},
		{"id newline", strings.NewReader(`{"id":"a\nb","pid":1}`), `invalid container state: id "a\nb": ` + idRule},
		{"id too long", strings.NewReader(`{"id":"` + strings.Repeat("f", 129) + `"}`), `invalid container state: id "` + strings.Repeat("f", 129) + `": ` + idRule},
		{"negative pid", strings.NewReader(`{"id":"abc","pid":-1}`), "invalid container state: pid -1 is negative"},
		{"read error", iotest.ErrReader(errors.New("broken pipe")), "read container state: broken pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadState(tt.input)
			if err == nil {
				t.Fatalf("ReadState = %+v; want error %q", s, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("ReadState error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// The decoder's own messages belong to encoding/json and change between Go
// releases: check our prefix and the error's type instead of the whole text.
func TestReadStateDecodeErrors(t *testing.T) {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	tests := []struct {
		name  string
		input string
		as    any
	}{
		{"invalid json", "{", &syntax},
		{"truncated", `{"id":"abc","pid":`, &syntax},
		{"not json", "prestart", &syntax},
		{"trailing garbage", `{"id":"abc"} {"id":"def"}`, &syntax},
		{"array", `[]`, &typ},
		{"pid as string", `{"id":"abc","pid":"1"}`, &typ},
		{"pid too large", `{"id":"abc","pid":99999999999999999999}`, &typ},
		{"annotations not strings", `{"id":"abc","annotations":{"bro.activate":5432}}`, &typ},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadState(strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("ReadState(%q) = %+v; want a decode error", tt.input, s)
			}
			if !strings.HasPrefix(err.Error(), "decode container state: ") {
				t.Errorf("ReadState(%q) error %q; want it to start with %q", tt.input, err, "decode container state: ")
			}
			if !errors.As(err, tt.as) {
				t.Errorf("ReadState(%q) error %v (%T); want a %T", tt.input, err, errors.Unwrap(err), tt.as)
			}
		})
	}
}

func TestReadStateSize(t *testing.T) {
	valid := []byte(`{"id":"abc","pid":1}`)
	exactly := append(append([]byte{}, valid...), bytes.Repeat([]byte(" "), MaxStateSize-len(valid))...)
	tests := []struct {
		name    string
		input   io.Reader
		wantErr error
	}{
		{"exactly the limit", bytes.NewReader(exactly), nil},
		{"one byte over", io.MultiReader(bytes.NewReader(exactly), strings.NewReader(" ")), ErrStateTooLarge},
		{"10 MiB of json", io.MultiReader(strings.NewReader(`{"id":"abc","x":"`), io.LimitReader(repeatReader('a'), 10<<20), strings.NewReader(`"}`)), ErrStateTooLarge},
		{"endless stdin", repeatReader(' '), ErrStateTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadState(tt.input)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadState = %v, %v; want error %v", s, err, tt.wantErr)
			}
			if err == nil && s.ID != "abc" {
				t.Errorf("ReadState id = %q; want abc", s.ID)
			}
			if err != nil && err.Error() != "container state on stdin is larger than 1048576 bytes" {
				t.Errorf("ReadState error\n got %s\nwant container state on stdin is larger than 1048576 bytes", err)
			}
		})
	}
}

// repeatReader is an endless stream of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func FuzzReadState(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzReadState.
	for _, s := range []string{`{"id":"abc","pid":1}`, `{"id":"../x"}`, `{}`, ``, `{"id":"a","pid":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadState(bytes.NewReader(data))
		if err != nil {
			if s != nil {
				t.Fatalf("ReadState(%q) returned a state with error %v", data, err)
			}
			return
		}
		if !record.ValidID(s.ID) {
			t.Fatalf("ReadState(%q) accepted invalid id %q", data, s.ID)
		}
		if s.Pid < 0 {
			t.Fatalf("ReadState(%q) accepted pid %d", data, s.Pid)
		}
		if strings.ContainsAny(s.ID, "/\x00") || strings.HasPrefix(s.ID, ".") {
			t.Fatalf("ReadState(%q) accepted id %q, unsafe as a file name", data, s.ID)
		}
	})
}
