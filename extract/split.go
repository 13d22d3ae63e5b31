package extract

import (
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/contacts-etl/contacts-etl/internal/jsonscan"
)

// This file splits API answers into raw records in one pass over the body,
// without encoding/json. It accepts exactly what json.Unmarshal of the same
// body into the envelope type accepts (a differential fuzz test,
// FuzzSplitter, holds it to that), returns each record as a
// subslice of the body (no copy), and reads the few top-level fields of a
// record the paginator needs as encoding/json would decode them into a
// struct: keys unescaped, then matched exactly or case-folded, the last
// duplicate winning, strings unquoted with invalid UTF-8 and lone
// surrogates made U+FFFD. The JSON grammar, its nesting limit and the
// unquoting are internal/jsonscan's; this file walks the envelope and the
// records on them and matches the keys.
//
// Records alias the body: the body must not be reused while they live.
// Their capacity is cut to their length, so an append to one never writes
// into the next.

// maxJSONDepth is encoding/json's nesting limit: deeper input is invalid.
const maxJSONDepth = jsonscan.MaxDepth

// jscan is a cursor over b for jsonscan's checker: the splitter walks the
// envelope and the records itself and leaves the values to jsonscan.
type jscan struct {
	b []byte
	i int
	// Of the last string scanned: whether it had an escape, and a byte
	// outside ASCII.
	f jsonscan.Flags
}

func (s *jscan) ws() { s.i = jsonscan.SkipWS(s.b, s.i) }

// is reports whether the next byte is c.
func (s *jscan) is(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// value checks the value at i, nested in depth containers, and moves past it.
func (s *jscan) value(depth int) bool {
	i, ok := jsonscan.Value(s.b, s.i, maxJSONDepth-depth)
	s.i = i
	return ok
}

func (s *jscan) lit(w string) bool {
	i, ok := jsonscan.Literal(s.b, s.i, w)
	s.i = i
	return ok
}

// next moves past the whitespace and the ',' or end byte that follows an
// element; false when it is neither.
func (s *jscan) next(end byte) bool {
	s.ws()
	if s.i < len(s.b) && (s.b[s.i] == ',' || s.b[s.i] == end) {
		s.i++
		return true
	}
	return false
}

// str checks a string whose opening quote is at i.
func (s *jscan) str() bool {
	i, f, ok := jsonscan.String(s.b, s.i)
	s.i, s.f = i, f
	return ok
}

func (s *jscan) number() bool {
	i, ok := jsonscan.Number(s.b, s.i)
	s.i = i
	return ok
}

// foldEq says whether the unquoted key k names the field name (ASCII) as
// encoding/json matches keys to struct fields: exactly or else under
// simple case folding, each rune standing for the least rune of its fold
// orbit (so "ID" is "id", "taſks" and "tas\u212As" are "tasks", but "İd"
// is not "id").
func foldEq(k []byte, name string) bool {
	if string(k) == name {
		return true
	}
	j := 0
	for i := 0; i < len(k); j++ {
		if j >= len(name) {
			return false
		}
		c := k[i]
		if c < utf8.RuneSelf {
			i++
		} else {
			r, n := utf8.DecodeRune(k[i:])
			i += n
			r = foldRune(r)
			if r >= utf8.RuneSelf {
				return false
			}
			c = byte(r)
		}
		if upper(c) != upper(name[j]) {
			return false
		}
	}
	return j == len(name)
}

// foldRune is the least rune of r's simple fold orbit.
func foldRune(r rune) rune {
	for {
		f := unicode.SimpleFold(r)
		if f <= r {
			return f
		}
		r = f
	}
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// splitter splits the top-level object of an answer: the array field list
// into records, the integer field total (if named) into n.
type splitter struct {
	s     jscan
	list  string
	total string
	keys  bool // read each record's id, dateUpdated and searchAfter
	hint  int  // records expected (capacity of items)

	items   []json.RawMessage // nil when the field is absent or null
	n       int
	ids     []string // set by split when keys
	updated []string
	after   []byte // searchAfter of the last record, raw; nil if none

	// The ids and dateUpdated of the records are unquoted into text, the
	// span of record i's in spans[2i] and spans[2i+1]; split makes them
	// strings of one allocation.
	text  []byte
	spans []span

	kbuf []byte // scratch for keys with escapes
}

// span is text[lo:hi].
type span struct{ lo, hi int }

// strings makes ids and updated of text and spans.
func (sp *splitter) strings() {
	if sp.items == nil {
		return
	}
	all := string(sp.text)
	n := len(sp.spans) / 2
	sp.ids, sp.updated = make([]string, n), make([]string, n)
	for i := range n {
		id, upd := sp.spans[2*i], sp.spans[2*i+1]
		sp.ids[i], sp.updated[i] = all[id.lo:id.hi], all[upd.lo:upd.hi]
	}
	sp.text, sp.spans = nil, nil
}

// split reads b; false when json.Unmarshal into the envelope would fail.
func (sp *splitter) split(b []byte) bool {
	if !sp.scan(b) {
		return false
	}
	if sp.keys {
		sp.strings()
	}
	return true
}

func (sp *splitter) scan(b []byte) bool {
	s := &sp.s
	*s = jscan{b: b}
	s.ws()
	if s.i >= len(b) {
		return false
	}
	if b[s.i] != '{' {
		// Only null decodes into a struct, as nothing.
		if !s.lit("null") {
			return false
		}
		s.ws()
		return s.i == len(b)
	}
	s.i++
	s.ws()
	if s.is('}') {
		s.i++
	} else {
		for {
			key, ok := sp.key()
			if !ok {
				return false
			}
			switch {
			case foldEq(key, sp.list):
				ok = sp.records()
			case sp.total != "" && foldEq(key, sp.total):
				ok = sp.int()
			default:
				ok = s.value(1)
			}
			if !ok || !s.next('}') {
				return false
			}
			if b[s.i-1] == '}' {
				break
			}
			s.ws()
		}
	}
	s.ws()
	return s.i == len(b)
}

// key reads an object key and its colon and the whitespace after it; the
// key comes unescaped (in kbuf when it had escapes).
func (sp *splitter) key() ([]byte, bool) {
	s := &sp.s
	start := s.i
	if !s.is('"') || !s.str() {
		return nil, false
	}
	key := s.b[start+1 : s.i-1]
	if s.f&jsonscan.Escaped != 0 {
		sp.kbuf = jsonscan.AppendUnquoted(sp.kbuf[:0], key)
		key = sp.kbuf
	}
	s.ws()
	if !s.is(':') {
		return nil, false
	}
	s.i++
	s.ws()
	return key, true
}

// int reads the total: an integer that fits an int, or null (no change).
func (sp *splitter) int() bool {
	s := &sp.s
	if s.is('n') {
		return s.lit("null")
	}
	start := s.i
	if !s.is('-') && (s.i >= len(s.b) || s.b[s.i] < '0' || s.b[s.i] > '9') {
		return false
	}
	if !s.number() {
		return false
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, strconv.IntSize)
	sp.n = int(n)
	return err == nil
}

// records reads the list: an array, or null (no records).
func (sp *splitter) records() bool {
	s := &sp.s
	sp.items, sp.after, sp.text, sp.spans = nil, nil, sp.text[:0], sp.spans[:0]
	if s.is('n') {
		return s.lit("null")
	}
	if !s.is('[') {
		return false
	}
	s.i++
	s.ws()
	sp.items = make([]json.RawMessage, 0, max(sp.hint, 4))
	if sp.keys && sp.spans == nil {
		sp.spans = make([]span, 0, 2*cap(sp.items))
		sp.text = make([]byte, 0, 48*cap(sp.items)) // an id and a time
	}
	if s.is(']') {
		s.i++
		return true
	}
	for {
		start := s.i
		var ok bool
		if sp.keys {
			var id, upd span
			id, upd, sp.after, ok = sp.record()
			sp.spans = append(sp.spans, id, upd)
		} else {
			ok = s.value(2)
		}
		if !ok {
			return false
		}
		sp.items = append(sp.items, s.b[start:s.i:s.i])
		if !s.next(']') {
			return false
		}
		if s.b[s.i-1] == ']' {
			return true
		}
		s.ws()
	}
}

// record checks one record of the list and reads its id, dateUpdated and
// searchAfter as json.Unmarshal into pageKey would: a string field takes
// the last string value of its key (other values leave it), searchAfter
// the last value of any kind; a record that is not an object has none.
func (sp *splitter) record() (id, upd span, after []byte, ok bool) {
	s := &sp.s
	if !s.is('{') {
		return span{}, span{}, nil, s.value(2)
	}
	s.i++
	s.ws()
	if s.is('}') {
		s.i++
		return span{}, span{}, nil, true
	}
	for {
		var key []byte
		if key, ok = sp.key(); !ok {
			return
		}
		switch {
		case foldEq(key, "id"):
			ok = sp.str(&id)
		case foldEq(key, "dateUpdated"):
			ok = sp.str(&upd)
		case foldEq(key, "searchAfter"):
			start := s.i
			if ok = s.value(3); ok {
				after = s.b[start:s.i:s.i]
			}
		default:
			ok = s.value(3)
		}
		if !ok || !s.next('}') {
			return id, upd, after, false
		}
		if s.b[s.i-1] == '}' {
			return id, upd, after, true
		}
		s.ws()
	}
}

// str checks a value (inside a record) and, when it is a string, unquotes
// it into text, at v.
func (sp *splitter) str(v *span) bool {
	s := &sp.s
	if !s.is('"') {
		return s.value(3)
	}
	start := s.i
	if !s.str() {
		return false
	}
	q := s.b[start+1 : s.i-1]
	lo := len(sp.text)
	sp.text = jsonscan.AppendString(sp.text, q, s.f)
	*v = span{lo, len(sp.text)}
	return true
}

// splitList returns the elements of the array field name of b's top-level
// object (nil when absent or null), each a subslice of b; ok is false
// where json.Unmarshal of b into a struct with that one []json.RawMessage
// field would fail.
func splitList(b []byte, name string) (items []json.RawMessage, ok bool) {
	sp := splitter{list: name}
	if !sp.split(b) {
		return nil, false
	}
	return sp.items, true
}

// bulkKeys reads the id and contactId of a listed record as json.Unmarshal
// into a map[string]json.RawMessage, then of each value into a string,
// did: keys unescaped and matched exactly, the last duplicate winning; a
// value that is not a string, and a record that is not a valid object,
// give "".
func bulkKeys(raw []byte) (id, contact string) {
	sp := splitter{}
	s := &sp.s
	*s = jscan{b: raw}
	s.ws()
	if !s.is('{') {
		return "", ""
	}
	var idq, contactq []byte // the last values, raw
	s.i++
	s.ws()
	if s.is('}') {
		s.i++
	} else {
		for {
			key, ok := sp.key()
			if !ok {
				return "", ""
			}
			start := s.i
			if !s.value(1) {
				return "", ""
			}
			switch string(key) {
			case "id":
				idq = raw[start:s.i]
			case "contactId":
				contactq = raw[start:s.i]
			}
			if !s.next('}') {
				return "", ""
			}
			if raw[s.i-1] == '}' {
				break
			}
			s.ws()
		}
	}
	s.ws()
	if s.i != len(raw) {
		return "", ""
	}
	return quoted(idq), quoted(contactq)
}

// quoted is the checked JSON value v as a string when it is one, else "".
func quoted(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	q := v[1 : len(v)-1]
	for _, c := range q {
		if c == '\\' || c >= utf8.RuneSelf {
			return string(jsonscan.AppendUnquoted(make([]byte, 0, len(q)), q))
		}
	}
	return string(q)
}
