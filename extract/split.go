package extract

import (
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file splits API answers into raw records in one pass over the body,
// without encoding/json. It accepts exactly what json.Unmarshal of the same
// body into the envelope type accepts (a differential fuzz test,
// FuzzSplitter, holds it to that), returns each record as a
// subslice of the body (no copy), and reads the few top-level fields of a
// record the paginator needs as encoding/json would decode them into a
// struct: keys unescaped, then matched exactly or case-folded, the last
// duplicate winning, strings unquoted with invalid UTF-8 and lone
// surrogates made U+FFFD.
//
// Records alias the body: the body must not be reused while they live.
// Their capacity is cut to their length, so an append to one never writes
// into the next.

// maxJSONDepth is encoding/json's nesting limit: deeper input is invalid.
const maxJSONDepth = 10000

// jscan is a JSON syntax checker walking b from i.
type jscan struct {
	b []byte
	i int
	// Of the last string scanned: whether it had an escape, and a byte
	// outside ASCII.
	esc, high bool
}

// plain marks the bytes a string holds as they are: not a quote, not a
// backslash, not a control character, ASCII.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// is reports whether the next byte is c.
func (s *jscan) is(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// value checks the value at i, nested in depth containers, and moves past it.
func (s *jscan) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		return s.str()
	case '{':
		return s.object(depth + 1)
	case '[':
		return s.array(depth + 1)
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return s.number()
		}
		return false
	}
}

func (s *jscan) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return false
	}
	s.i += len(w)
	return true
}

// object checks an object whose '{' is at i, at nesting depth.
func (s *jscan) object(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	s.i++
	s.ws()
	if s.is('}') {
		s.i++
		return true
	}
	for {
		if !s.is('"') || !s.str() {
			return false
		}
		s.ws()
		if !s.is(':') {
			return false
		}
		s.i++
		s.ws()
		if !s.value(depth) {
			return false
		}
		if !s.next('}') {
			return false
		}
		if s.b[s.i-1] == '}' {
			return true
		}
		s.ws()
	}
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

// array checks an array whose '[' is at i, at nesting depth.
func (s *jscan) array(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	s.i++
	s.ws()
	if s.is(']') {
		s.i++
		return true
	}
	for {
		if !s.value(depth) || !s.next(']') {
			return false
		}
		if s.b[s.i-1] == ']' {
			return true
		}
		s.ws()
	}
}

// str checks a string whose opening quote is at i.
func (s *jscan) str() bool {
	b, i := s.b, s.i+1
	s.esc, s.high = false, false
	for i < len(b) {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return true
		case c == '\\':
			s.esc = true
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+5 >= len(b) || hex4(b[i+2:i+6]) < 0 {
					return false
				}
				i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default: // outside ASCII, valid UTF-8 or not: encoding/json takes it
			s.high = true
			i++
		}
	}
	return false
}

func (s *jscan) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return false
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = digits(b, i)
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// hex4 reads 4 hex digits; -1 when they are not.
func hex4(b []byte) rune {
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

// appendUnquoted appends the string whose checked body (between the
// quotes) is q as encoding/json decodes it: escapes resolved, a surrogate
// pair joined, a lone surrogate and each byte of invalid UTF-8 made U+FFFD.
func appendUnquoted(dst, q []byte) []byte {
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
				r := hex4(q[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(q) && q[i] == '\\' && q[i+1] == 'u' {
						r2 = hex4(q[i+2:])
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
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(q[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
		}
	}
	return dst
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
	if s.esc {
		sp.kbuf = appendUnquoted(sp.kbuf[:0], key)
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
	if !s.is('-') && (s.i >= len(s.b) || !isDigit(s.b[s.i])) {
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
	if !s.esc && (!s.high || utf8.Valid(q)) {
		sp.text = append(sp.text, q...)
	} else {
		sp.text = appendUnquoted(sp.text, q)
	}
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
			return string(appendUnquoted(make([]byte, 0, len(q)), q))
		}
	}
	return string(q)
}
