package transform

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
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

// valid returns v made valid UTF-8 (runs of bad bytes become U+FFFD) and
// whether it had to be mended.
func valid(v []byte) ([]byte, bool) {
	if utf8.Valid(v) {
		return v, false
	}
	return bytes.ToValidUTF8(v, []byte("\uFFFD")), true
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
