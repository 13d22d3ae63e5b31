package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"
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
		key := raw[ks+1 : i-1]
		var k string
		if hasEscape(key) || !utf8.Valid(key) {
			if json.Unmarshal(raw[ks:i], &k) != nil {
				k = string(key)
			}
		} else {
			k = unsafe.String(unsafe.SliceData(key), len(key))
		}
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

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
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
