package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/contacts-etl/contacts-etl/internal/jsonscan"
)

// member is one field of a JSON object: its key (unquoted) and its raw
// value, both views into the record's bytes.
type member struct {
	key string
	raw []byte
}

// splitObject splits a JSON object into its members, appending to ms
// (whose backing array is reused record after record: no allocation per
// record once it has grown). raw must be valid JSON (json.Valid). Keys are
// unquoted; one with escapes is decoded into a new string. The error says
// why raw is not an object.
func splitObject(raw []byte, ms []member) ([]member, error) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		if i < len(raw) && raw[i] == 'n' {
			return ms, errors.New("decode: not a JSON object")
		}
		var m map[string]json.RawMessage
		return ms, fmt.Errorf("decode: %w", json.Unmarshal(raw, &m))
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return ms, nil
	}
	for i < len(raw) {
		ks := i
		i = skipString(raw, i)
		k := objectKey(raw[ks:i])
		i = skipWS(raw, i)
		i = skipWS(raw, i+1) // ':'
		vs := i
		i = skipValue(raw, i)
		ms = append(ms, member{key: k, raw: raw[vs:i]})
		i = skipWS(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
			continue
		}
		break
	}
	return ms, nil
}

// objectKey unquotes the JSON string q, a member's key: a view into q
// when it has no escapes and is valid UTF-8, else decoded into a new
// string (its bytes as they are if encoding/json will not decode it).
func objectKey(q []byte) string {
	key := q[1 : len(q)-1]
	if hasEscape(key) || !utf8.Valid(key) {
		if k, ok := jsonscan.Unquote(nil, q); ok {
			return string(k)
		}
		return string(key)
	}
	return unsafe.String(unsafe.SliceData(key), len(key))
}

// maxSplitDepth bounds the nesting splitValid checks itself (the record
// object is one level, so its member values get jsonscan room
// maxSplitDepth-1); deeper records take the slow path (encoding/json
// allows 10,000 levels).
const maxSplitDepth = 200

// splitValid is json.Valid and splitObject in one pass: it appends the
// members of raw to ms and reports true when raw is valid JSON (as
// json.Valid has it: strings are not checked for UTF-8) holding an
// object. False (ms then holds garbage past its length on entry) when raw
// is not valid JSON, not an object, or nested deeper than maxSplitDepth:
// the caller takes the slow path, which says why.
func splitValid(raw []byte, ms []member) ([]member, bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return ms, false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return ms, skipWS(raw, i+1) == len(raw)
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return ms, false
		}
		// a key of plain ASCII is a view; any other is checked and
		// unquoted as splitObject does
		j := i + 1
		for j < len(raw) && plainASCII[raw[j]] {
			j++
		}
		var key string
		var ok bool
		if j < len(raw) && raw[j] == '"' {
			key = view(raw[i+1 : j])
			i = j + 1
		} else {
			ks := i
			if i, _, ok = jsonscan.String(raw, i); !ok {
				return ms, false
			}
			key = objectKey(raw[ks:i])
		}
		i = skipWS(raw, i)
		if i >= len(raw) || raw[i] != ':' {
			return ms, false
		}
		i = skipWS(raw, i+1)
		vs := i
		if i, ok = jsonscan.Value(raw, i, maxSplitDepth-1); !ok {
			return ms, false
		}
		ms = append(ms, member{key: key, raw: raw[vs:i]})
		i = skipWS(raw, i)
		if i >= len(raw) {
			return ms, false
		}
		switch raw[i] {
		case ',':
			i = skipWS(raw, i+1)
		case '}':
			return ms, skipWS(raw, i+1) == len(raw)
		default:
			return ms, false
		}
	}
}

// plainByte: the bytes of a JSON string that stand for themselves (not
// '"', '\\' or a control character).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainASCII: plainByte's ASCII bytes.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendCompact is json.Compact for src, a valid JSON value (a record
// decode accepted, or a part of one): it appends src without the
// whitespace outside its strings (TestAppendCompactMatchesJSON).
func appendCompact(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i = skipString(src, i)
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			i++
			start = i
		default:
			i++
		}
	}
	return append(dst, src[start:]...)
}

// appendKey appends the JSON text json.Marshal gives for the string k: k
// quoted as it is when it is printable ASCII without '"', '\\' or the
// characters Marshal escapes for HTML ('<', '>', '&'); else Marshal's.
func appendKey(dst []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			kb, _ := json.Marshal(k)
			return append(dst, kb...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"')
}

// view is b as a string without copying: valid while b is not written
// (the scratch buffers it views are rewritten for the next record).
func view(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int { return jsonscan.SkipWS(b, i) }

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the (valid) JSON value at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// eachElement calls fn with each raw element of the (valid) JSON array raw.
func eachElement(raw []byte, fn func(el []byte) bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return
	}
	for i < len(raw) {
		s := i
		i = skipValue(raw, i)
		if !fn(raw[s:i]) {
			return
		}
		i = skipWS(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
			continue
		}
		return
	}
}

// lookup finds the member key of the (valid) JSON object raw (the last
// one when it is named twice), without allocating for plain keys.
func lookup(raw []byte, key string) ([]byte, bool) {
	var found []byte
	ok := false
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	i = skipWS(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		ks := i
		i = skipString(raw, i)
		k := raw[ks+1 : i-1]
		match := string(k) == key
		if !match && hasEscape(k) {
			var s string
			match = json.Unmarshal(raw[ks:i], &s) == nil && s == key
		}
		i = skipWS(raw, i)
		i = skipWS(raw, i+1)
		vs := i
		i = skipValue(raw, i)
		if match {
			found, ok = raw[vs:i], true
		}
		i = skipWS(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return found, ok
}

// decodeString decodes the JSON value raw (valid JSON without whitespace
// around it: a value of a record decode accepted) into a string as json.Unmarshal does (false when
// Unmarshal fails), through plainString and unquote for strings, with buf
// as unquote's scratch space (returned, maybe grown).
func decodeString(raw, buf []byte) (string, []byte, bool) {
	if s, ok := plainString(raw); ok {
		return s, buf, true
	}
	if b, ok := unquote(buf[:0], raw); ok {
		return string(b), b, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", buf, false
	}
	return s, buf, true
}

// unquote appends the content of the JSON string raw to dst as
// encoding/json decodes it (jsonscan.Unquote); false, for dst unchanged,
// when raw is not exactly one valid JSON string.
func unquote(dst, raw []byte) ([]byte, bool) { return jsonscan.Unquote(dst, raw) }

// plainStrings appends to ss the elements of the (valid) JSON array raw
// when they are all plain strings (plainString): what json.Unmarshal into
// a []string gives then, a non-nil slice even for []. False otherwise.
func plainStrings(raw []byte, ss []string) ([]string, bool) {
	if ss == nil {
		ss = make([]string, 0, 4)
	}
	ok := true
	eachElement(raw, func(el []byte) bool {
		var s string
		if s, ok = plainString(el); ok {
			ss = append(ss, s)
		}
		return ok
	})
	return ss, ok
}

// plainString returns the content of the JSON string raw without
// allocating when it has no escapes and is valid UTF-8.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	c := raw[1 : len(raw)-1]
	for _, b := range c {
		if b == '\\' || b >= 0x80 {
			if b >= 0x80 && utf8.Valid(c) && !hasEscape(c) {
				return unsafe.String(unsafe.SliceData(c), len(c)), true
			}
			return "", false
		}
	}
	return unsafe.String(unsafe.SliceData(c), len(c)), true
}
