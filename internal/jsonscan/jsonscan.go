// Package jsonscan checks JSON text in one pass, without encoding/json,
// accepting exactly what encoding/json accepts: its grammar, its nesting
// limit (MaxDepth), and invalid UTF-8 inside strings. It also unquotes
// strings as encoding/json decodes them: escapes resolved, surrogate pairs
// joined, lone surrogates and each byte of invalid UTF-8 made U+FFFD.
//
// The functions take the text and an index into it and return the index
// after what they read, so callers walk the text with no state besides an
// int (and so the scanner costs no more than a hand-written one).
package jsonscan

import (
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit: text nesting more arrays and
// objects than this is invalid.
const MaxDepth = 10000

// SkipWS returns the index of the first byte from b[i] that is not JSON
// whitespace (len(b) if none).
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Valid is json.Valid: b is one JSON value with whitespace around it,
// nesting at most MaxDepth levels.
func Valid(b []byte) bool {
	i, ok := Value(b, SkipWS(b, 0), MaxDepth)
	return ok && SkipWS(b, i) == len(b)
}

// Value checks the JSON value at b[i] and returns the index after it. room
// is how many levels of arrays and objects the value may still open: an
// array or object is invalid when room < 1, its elements get room-1. (A
// value n containers deep in a text limited to max levels has room max-n:
// MaxDepth-n for encoding/json's limit.) On failure the index is where the
// text went wrong, or near it.
func Value(b []byte, i, room int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		i, _, ok := String(b, i)
		return i, ok
	case c == '{':
		if room < 1 {
			return i, false
		}
		i = SkipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, _, ok = String(b, i); !ok {
				return i, false
			}
			i = SkipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = Value(b, SkipWS(b, i+1), room-1); !ok {
				return i, false
			}
			i = SkipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = SkipWS(b, i+1)
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		if room < 1 {
			return i, false
		}
		i = SkipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = Value(b, i, room-1); !ok {
				return i, false
			}
			i = SkipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = SkipWS(b, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == 't':
		return Literal(b, i, "true")
	case c == 'f':
		return Literal(b, i, "false")
	case c == 'n':
		return Literal(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return Number(b, i)
	}
	return i, false
}

// Literal checks that b holds lit at i and returns the index after it.
func Literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// Number checks the JSON number at b[i],
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns the index
// after it.
func Number(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// Flags say what a string String checked holds besides plain ASCII.
type Flags uint8

const (
	Escaped  Flags = 1 << iota // a backslash escape
	NonASCII                   // a byte from 0x80, valid UTF-8 or not
)

// plainASCII marks the ASCII bytes a string holds as they are: not a
// quote, not a backslash, not a control character.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainByte is plainASCII and the bytes from 0x80.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// String checks the JSON string whose opening quote is at b[i] and returns
// the index after its closing quote, and whether it had escapes or bytes
// outside ASCII. Like encoding/json it takes any byte from 0x80, valid
// UTF-8 or not; it refuses control characters and escapes JSON has not.
func String(b []byte, i int) (int, Flags, bool) {
	var f Flags
	for i++; i < len(b); {
		if f&NonASCII == 0 {
			for i < len(b) && plainASCII[b[i]] {
				i++
			}
		} else {
			for i < len(b) && plainByte[b[i]] {
				i++
			}
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, f, true
		case c == '\\':
			f |= Escaped
			if i+1 >= len(b) {
				return i + 1, f, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if Hex4(b[i+2:]) < 0 {
					return i + 1, f, false
				}
				i += 6
			default:
				return i + 1, f, false
			}
		case c < 0x20:
			return i, f, false
		default:
			f |= NonASCII
			i++
		}
	}
	return i, f, false
}

// Hex4 reads the 4 hex digits b starts with; -1 when it does not.
func Hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Unquote appends the JSON string s (quotes included, nothing around it)
// to dst as encoding/json decodes it into a string; false, dst unchanged,
// when s is not exactly one valid JSON string.
func Unquote(dst, s []byte) ([]byte, bool) {
	if len(s) < 2 || s[0] != '"' {
		return dst, false
	}
	end, f, ok := String(s, 0)
	if !ok || end != len(s) {
		return dst, false
	}
	return AppendString(dst, s[1:end-1], f), true
}

// AppendString appends the body q (between the quotes) of a string String
// checked, with the flags it gave, as AppendUnquoted does; as it is when
// there is nothing to decode.
func AppendString(dst, q []byte, f Flags) []byte {
	if f&Escaped == 0 && (f&NonASCII == 0 || utf8.Valid(q)) {
		return append(dst, q...)
	}
	return AppendUnquoted(dst, q)
}

// AppendUnquoted appends the body q (between the quotes) of a string
// String checked, as encoding/json decodes it: escapes resolved, a
// surrogate pair joined, a lone surrogate and each byte of invalid UTF-8
// made U+FFFD.
func AppendUnquoted(dst, q []byte) []byte {
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\\':
			switch e := q[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := Hex4(q[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(q) && q[i] == '\\' && q[i+1] == 'u' {
						r2 = Hex4(q[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
						r = d
						i += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(q) && q[j] < utf8.RuneSelf && q[j] != '\\' {
				j++
			}
			dst = append(dst, q[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(q[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
		}
	}
	return dst
}
