package token

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// A small strict JSON scanner (RFC 8259) for JOSE headers, claims and key sets.
//
// It is strict where encoding/json is lenient: invalid UTF-8 and lone
// surrogates are refused instead of replaced, duplicate member names are
// refused at every depth (compared after unescaping), nesting depth and the
// number of members of an object are bounded, and nothing but whitespace may
// follow the top-level value. It never allocates for strings without escapes:
// they are returned as sub-slices of the input.

const (
	// maxJSONDepth bounds the nesting of objects and arrays (the top-level
	// object is depth 1).
	maxJSONDepth = 8
	// maxJSONMembers bounds the members of one object, which keeps the
	// quadratic duplicate check cheap.
	maxJSONMembers = 64
)

type scanner struct {
	b []byte
	i int
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.i < len(s.b) && isJSONSpace(s.b[s.i]) {
		s.i++
	}
}

// peek returns the next non-whitespace byte without consuming it (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// consume skips whitespace and consumes c, reporting whether it was there.
func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace remains.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// member reads the next member name of an object whose '{' was consumed, and
// the colon after it. first is true for the first call on an object. done is
// true when the object ended ('}' consumed).
func (s *scanner) member(first bool) (name []byte, done, ok bool) {
	c := s.peek()
	switch {
	case c == '}':
		s.i++
		return nil, true, true
	case !first:
		if c != ',' {
			return nil, false, false
		}
		s.i++
		s.ws()
	}
	name, ok = s.str()
	if !ok || !s.consume(':') {
		return nil, false, false
	}
	return name, false, true
}

// element prepares the next element of an array whose '[' was consumed. done
// is true when the array ended (']' consumed).
func (s *scanner) element(first bool) (done, ok bool) {
	c := s.peek()
	switch {
	case c == ']':
		s.i++
		return true, true
	case !first:
		if c != ',' {
			return false, false
		}
		s.i++
		s.ws()
	}
	return false, true
}

// str reads a JSON string at the current position (after optional
// whitespace) and returns its decoded bytes: a sub-slice of the input when it
// has no escapes, a new slice otherwise.
func (s *scanner) str() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\':
			return s.strEscaped(start)
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return nil, false
}

// strEscaped continues str for a string with escapes, from its start.
func (s *scanner) strEscaped(start int) ([]byte, bool) {
	out := make([]byte, 0, s.i-start+16)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return nil, false
			}
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		// An escape.
		if s.i+1 >= len(s.b) {
			return nil, false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one.
				if r >= 0xDC00 || s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return nil, false
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
					return nil, false
				}
				r = utf16.DecodeRune(r, r2)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	s.i += 4
	return r, true
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && '1' <= s.b[s.i] && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// value reads and validates any JSON value at depth (the depth of the value
// itself), including duplicate members in nested objects.
func (s *scanner) value(depth int) bool {
	switch s.peek() {
	case '{':
		if depth > maxJSONDepth {
			return false
		}
		s.i++
		return s.objectRest(depth)
	case '[':
		if depth > maxJSONDepth {
			return false
		}
		s.i++
		for first := true; ; first = false {
			done, ok := s.element(first)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !s.value(depth + 1) {
				return false
			}
		}
	case '"':
		_, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, ok := s.number()
		return ok
	}
}

// objectRest validates the members of an object whose '{' was consumed.
func (s *scanner) objectRest(depth int) bool {
	var buf [8][]byte
	seen := names(buf[:0])
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return false
		}
		if done {
			return true
		}
		if seen, ok = seen.add(name); !ok {
			return false
		}
		if !s.value(depth + 1) {
			return false
		}
	}
}

// names is the list of member names of one object, for the duplicate check.
type names [][]byte

// add returns n with name appended, refusing a duplicate or one member too
// many. (A value method, so that a list backed by an array on the stack stays
// there.)
func (n names) add(name []byte) (names, bool) {
	if len(n) >= maxJSONMembers {
		return n, false
	}
	for _, m := range n {
		if bytes.Equal(m, name) {
			return n, false
		}
	}
	return append(n, name), true
}
