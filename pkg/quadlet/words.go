package quadlet

import (
	"strconv"
	"strings"
)

// SplitWords splits a value into words the way quadlet reads Annotation= and
// Environment= (systemd's extract_first_word with relaxed unquoting and C
// escapes): words are separated by whitespace; single or double quotes group
// a word and may start anywhere in it; a backslash escapes the next character
// (\n, \t, \xHH, \NNN octal, \uXXXX and the like are decoded, an unknown escape
// keeps the character). Like quadlet's relaxed mode it never fails: an
// unterminated quote ends at the end of the value.
func SplitWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			r, n := unescape(s[i+1:])
			w.WriteString(r)
			i += n
			inWord = true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// unescape decodes the escape after a backslash at the start of s and returns
// the decoded text and how many bytes of s it used.
func unescape(s string) (string, int) {
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r",
		't': "\t", 'v': "\v", 's': " ", '\\': "\\", '"': "\"", '\'': "'"}
	if r, ok := simple[s[0]]; ok {
		return r, 1
	}
	number := func(prefix, width, base int) (string, int, bool) {
		if len(s) < prefix+width {
			return "", 0, false
		}
		n, err := strconv.ParseUint(s[prefix:prefix+width], base, 32)
		if err != nil || n == 0 {
			return "", 0, false // systemd refuses NUL too
		}
		if base == 16 && width == 2 || base == 8 {
			return string([]byte{byte(n)}), prefix + width, n < 256
		}
		return string(rune(n)), prefix + width, true
	}
	var r string
	var n int
	var ok bool
	switch s[0] {
	case 'x':
		r, n, ok = number(1, 2, 16)
	case 'u':
		r, n, ok = number(1, 4, 16)
	case 'U':
		r, n, ok = number(1, 8, 16)
	case '0', '1', '2', '3':
		r, n, ok = number(0, 3, 8)
	}
	if ok {
		return r, n
	}
	return s[:1], 1 // relaxed: an unknown escape keeps the character
}

// KeyValues returns the key=value words of every value of key in section, in
// order: the value of each key (the last one wins, as quadlet's
// --annotation flags do) and the keys in the order first seen. A word
// without "=" maps to "".
func (f *File) KeyValues(section, key string) (map[string]string, []string) {
	values := make(map[string]string)
	var order []string
	for _, line := range f.LookupAll(section, key) {
		for _, word := range SplitWords(line) {
			k, v, _ := strings.Cut(word, "=")
			if _, seen := values[k]; !seen {
				order = append(order, k)
			}
			values[k] = v
		}
	}
	return values, order
}
