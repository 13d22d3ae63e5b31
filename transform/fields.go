package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Reasons of field rejects that callers may test for.
const (
	ReasonUTF8Replaced = "invalid UTF-8 replaced"
)

// errMissingID rejects a record without an id: it has no key.
var errMissingID = errors.New("missing id")

// fieldReject is one field of a landed record that could not be mapped
// (landed false: its column is NULL) or was mended (landed true).
type fieldReject struct {
	field, column, raw, reason string
	landed                     bool
}

// object is one record being mapped field by field. A field of the wrong
// shape becomes the zero value of its column (NULL) and a fieldReject; it
// never spoils the rest of the record.
type object struct {
	m   map[string]json.RawMessage
	rej []fieldReject
}

// parseObject splits raw into its fields and reads its id. The error
// (a whole-record reject) says why the record has no usable id.
func parseObject(raw []byte) (*object, string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", fmt.Errorf("decode: %w", err)
	}
	if m == nil {
		return nil, "", errors.New("decode: not a JSON object")
	}
	o := &object{m: m}
	v, ok := o.get("id")
	if !ok {
		return nil, "", errMissingID
	}
	var id string
	switch {
	case !utf8.Valid(v):
		return nil, "", errors.New("unusable id: invalid UTF-8")
	case json.Unmarshal(v, &id) != nil:
		return nil, "", fmt.Errorf("unusable id: want string, got %s", kind(v))
	case strings.TrimSpace(id) == "":
		return nil, "", errMissingID
	}
	return o, id, nil
}

// get returns the raw JSON of a field; false when absent or null.
func (o *object) get(field string) (json.RawMessage, bool) {
	v, ok := o.m[field]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func (o *object) reject(field, column string, raw []byte, reason string, landed bool) {
	o.rej = append(o.rej, fieldReject{field: field, column: column, raw: rawText(raw), reason: reason, landed: landed})
}

func (o *object) wrong(field, column string, raw []byte, want string) {
	o.reject(field, column, raw, fmt.Sprintf("want %s, got %s", want, kind(raw)), false)
}

// valid returns v made valid UTF-8 (runs of bad bytes become U+FFFD) and
// whether it had to be mended.
func valid(v []byte) ([]byte, bool) {
	if utf8.Valid(v) {
		return v, false
	}
	return bytes.ToValidUTF8(v, []byte("\uFFFD")), true
}

// mended records a field whose invalid UTF-8 was replaced but whose value landed.
func (o *object) mended(field, column string, raw []byte, bad bool) {
	if bad {
		o.reject(field, column, raw, ReasonUTF8Replaced, true)
	}
}

// str reads a string field; "" (NULL) when absent or of another type.
func (o *object) str(field, column string) string {
	raw, ok := o.get(field)
	if !ok {
		return ""
	}
	v, bad := valid(raw)
	var s string
	if json.Unmarshal(v, &s) != nil {
		o.wrong(field, column, raw, "string")
		return ""
	}
	o.mended(field, column, raw, bad)
	return s
}

// strs reads an array of strings; nil (NULL) when absent or of another shape.
func (o *object) strs(field, column string) []string {
	raw, ok := o.get(field)
	if !ok {
		return nil
	}
	v, bad := valid(raw)
	var ss []*string
	if json.Unmarshal(v, &ss) != nil {
		o.wrong(field, column, raw, "array of strings")
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		if s == nil {
			o.reject(field, column, raw, "want array of strings, got null in it", false)
			return nil
		}
		out[i] = *s
	}
	o.mended(field, column, raw, bad)
	return out
}

// boolean reads a JSON boolean; def when absent (the API omits false), nil
// (NULL) when of another type.
func (o *object) boolean(field, column string, def bool) *bool {
	raw, ok := o.get(field)
	if !ok {
		return &def
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		o.wrong(field, column, raw, "boolean")
		return nil
	}
	return &b
}

// time reads a timestamp sent as a string (see ParseTime) or as a number
// of epoch milliseconds; naive says it was a zone-less wall time read in loc.
func (o *object) time(field, column string, loc *time.Location) (t time.Time, naive bool) {
	raw, ok := o.get(field)
	if !ok {
		return time.Time{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			o.wrong(field, column, raw, "time")
			return time.Time{}, false
		}
		s = n.String()
	}
	t, naive, err := parseTime(s, loc)
	if err != nil {
		o.reject(field, column, raw, err.Error(), false)
		return time.Time{}, false
	}
	return t, naive
}

// date reads a date (or a timestamp: its UTC date).
func (o *object) date(field, column string) day {
	t, _ := o.time(field, column, time.UTC)
	if t.IsZero() {
		return day{}
	}
	return day{t: t, ok: true}
}

// json renders a field as compact JSON text if it has the wanted shape
// ('[' array, '{' object); an empty array or object is "" (NULL) when
// emptyNull is set.
func (o *object) json(field, column string, want byte, emptyNull bool) string {
	raw, ok := o.get(field)
	if !ok {
		return ""
	}
	v, bad := valid(raw)
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != want {
		o.wrong(field, column, raw, map[byte]string{'[': "array", '{': "object"}[want])
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		o.reject(field, column, raw, err.Error(), false)
		return ""
	}
	if emptyNull && (buf.String() == "[]" || buf.String() == "{}") {
		return ""
	}
	o.mended(field, column, raw, bad)
	return buf.String()
}

// kind names the JSON type of raw.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	}
	return "number"
}

// rawText renders raw JSON for a reject row: as is when valid UTF-8, else
// with each byte that is not part of valid UTF-8 written as \xNN; cut at
// whsql.RejectRawMax bytes on a rune boundary.
func rawText(raw []byte) string {
	var b strings.Builder
	for i := 0; i < len(raw) && b.Len() < whsql.RejectRawMax; {
		r, n := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString(`\x` + strconv.FormatUint(uint64(raw[i])|0x100, 16)[1:])
		} else {
			b.Write(raw[i : i+n])
		}
		i += n
	}
	return b.String()
}

// NormEmail trims and lower-cases an address.
func NormEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
