package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/contacts-etl/contacts-etl/extract/api"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// A plan maps the records of one table as its mapping says: every column
// from its fields (or a computed value), in the table's schema order. It
// is built once per stage; mapping a record splits it once into its
// members and allocates nothing per field that is not a value kept.

type source struct {
	slot int      // top-level field
	rest []string // path inside it (dotted paths)
	name string   // the path as written: the field of a field reject
}

type colPlan struct {
	c       *whsql.Column // nil: a system column
	name    string
	srcs    []source
	local   bool // zone-less times in the location's zone
	region  int  // the column holding a phone's default region; -1 none
	late    bool // computed after the other columns (depends on them)
	jsonSep byte // '{' object, '[' array, 0 any
}

type plan struct {
	t      whsql.Table
	cols   []colPlan
	fields map[string]int // top-level field → slot
	nslots int
	id     int // slot of "id"
	body   int // slot of "contactId" (children), -1 none
	cfs    int // slot of "customFields" (contacts), -1 none
	// columns a computed one reads: completed and due date of tasks,
	// times read in the location's zone
	completed, due int
	zoned          []int
}

func newPlan(t whsql.Table) *plan {
	p := &plan{t: t, fields: map[string]int{}, body: -1, cfs: -1, completed: -1, due: -1}
	slot := func(f string) int {
		i, ok := p.fields[f]
		if !ok {
			i = p.nslots
			p.fields[f] = i
			p.nslots++
		}
		return i
	}
	p.id = slot("id")
	for i, fl := range t.Schema.Fields() {
		cp := colPlan{name: fl.Name, region: -1}
		if i < len(t.Cols) {
			cp.c = t.Cols[i]
		}
		if c := cp.c; c != nil {
			for _, path := range c.From {
				seg := strings.Split(path, ".")
				cp.srcs = append(cp.srcs, source{slot: slot(seg[0]), rest: seg[1:], name: path})
			}
			if c.CustomField != "" {
				cp.srcs = []source{{slot: slot("customFields"), name: "customFields." + c.CustomField}}
			}
			cp.local = c.Zone == "location"
			switch c.Shape {
			case "object":
				cp.jsonSep = '{'
			case "array":
				cp.jsonSep = '['
			}
			if c.RegionFrom != "" {
				cp.region = t.Schema.FieldIndices(c.RegionFrom)[0]
				cp.late = true
			}
			if c.Compute != "" {
				cp.late = true
			}
			if len(c.From) == 1 && c.Normalize == "" {
				switch c.From[0] {
				case "completed":
					p.completed = i
				case "dueDate":
					p.due = i
				}
			}
			if c.Type == whsql.TypeTimestamp && cp.local {
				p.zoned = append(p.zoned, i)
			}
		}
		p.cols = append(p.cols, cp)
	}
	for _, c := range t.Cols {
		if c != nil && c.Compute == whsql.ComputeParent {
			p.body = slot("contactId")
		}
	}
	if t.Name == whsql.Contacts.Name {
		p.cfs = slot("customFields")
	}
	if m := whsql.CurrentMapping(); m != nil {
		if tm := m.Tables[t.Name]; tm != nil {
			for _, f := range tm.Ignore {
				slot(f)
			}
		}
	}
	return p
}

// val is one column's value of the record being mapped; the zero val is NULL.
type val struct {
	ok    bool
	s     string
	ss    []string
	b     bool
	i     int64
	f     float64
	t     time.Time
	naive bool
}

// scratch is the record being mapped: its members by slot and its values by
// column. Reused record after record.
type scratch struct {
	raw     []byte
	members []member
	slots   [][]byte // nil: absent or null
	extra   []int    // members no column names
	vals    []val
	lists   [][]string // backing arrays of list values, per column
	texts   [][]byte   // backing arrays of JSON text values, per column
	rej     []fieldReject
	buf     []byte   // JSON text of a custom field value (customRows)
	ubuf    []byte   // unquote's scratch space
	cfList  []string // a custom field value's list (customRows)
	// the last NormalizePhone of this record (phone_e164 and
	// phone_extension read the same number)
	phoneMemo struct {
		in, region, fallback, e164, ext string
		ok, set                         bool
	}
	// the last NormalizeEmail (email_normalized and email_valid)
	emailMemo struct {
		in, out string
		ok, set bool
	}
}

// email is NormalizeEmail, remembered for the record being mapped.
func (r *scratch) email(s string) (string, bool) {
	m := &r.emailMemo
	if !m.set || m.in != s {
		m.out, m.ok = NormalizeEmail(s)
		m.in, m.set = s, true
	}
	return m.out, m.ok
}

// phone is NormalizePhone, remembered for the record being mapped.
func (r *scratch) phone(s, region, fallback string) (e164, ext string, ok bool) {
	m := &r.phoneMemo
	if m.set && m.in == s && m.region == region && m.fallback == fallback {
		return m.e164, m.ext, m.ok
	}
	e164, ext, ok = NormalizePhone(s, region, fallback)
	m.in, m.region, m.fallback = s, region, fallback
	m.e164, m.ext, m.ok, m.set = e164, ext, ok, true
	return e164, ext, ok
}

func (r *scratch) reset(p *plan, raw []byte) {
	r.raw = raw
	r.members = r.members[:0]
	r.extra = r.extra[:0]
	r.rej = nil
	r.phoneMemo.set = false // their strings may view the previous record
	r.emailMemo.set = false
	if cap(r.slots) < p.nslots {
		r.slots = make([][]byte, p.nslots)
	}
	r.slots = r.slots[:p.nslots]
	clear(r.slots)
	if cap(r.vals) < len(p.cols) {
		r.vals = make([]val, len(p.cols))
		r.lists = make([][]string, len(p.cols))
		r.texts = make([][]byte, len(p.cols))
	}
	r.vals = r.vals[:len(p.cols)]
	clear(r.vals)
}

func (r *scratch) reject(field, column string, raw []byte, reason string, landed bool) {
	for _, o := range r.rej {
		if o.field == field && o.column != column {
			return // reported by the first column that reads the field
		}
	}
	r.rej = append(r.rej, fieldReject{field: field, column: column, raw: rawText(raw), reason: reason, landed: landed})
}

func (r *scratch) wrong(field, column string, raw []byte, want string) {
	r.reject(field, column, raw, fmt.Sprintf("want %s, got %s", want, kind(raw)), false)
}

// decode splits raw into r's slots and reads its id. The error (a
// whole-record reject) says why the record has no usable id.
func (p *plan) decode(r *scratch, raw []byte) (string, error) {
	r.reset(p, raw)
	if ms, ok := splitValid(raw, r.members); ok {
		r.members = ms
	} else {
		r.members = ms[:0]
		if !json.Valid(raw) {
			var m map[string]json.RawMessage
			err := json.Unmarshal(raw, &m)
			if err == nil {
				err = errors.New("invalid JSON")
			}
			return "", fmt.Errorf("decode: %w", err)
		}
		var err error
		if r.members, err = splitObject(raw, r.members); err != nil {
			return "", err
		}
	}
	for i, m := range r.members {
		s, ok := p.fields[m.key]
		if !ok {
			r.extra = append(r.extra, i)
			continue
		}
		if string(m.raw) == "null" {
			r.slots[s] = nil
		} else {
			r.slots[s] = m.raw
		}
	}
	v := r.slots[p.id]
	if v == nil {
		return "", errMissingID
	}
	id, plain := plainString(v)
	if !plain {
		if !utf8.Valid(v) {
			return "", errors.New("unusable id: invalid UTF-8")
		}
		var ok bool
		if id, r.ubuf, ok = decodeString(v, r.ubuf); !ok {
			return "", fmt.Errorf("unusable id: want string, got %s", kind(v))
		}
	}
	if strings.TrimSpace(id) == "" {
		return "", errMissingID
	}
	return id, nil
}

// value finds the raw value of src: nil when absent or null.
func (r *scratch) value(src source) []byte {
	v := r.slots[src.slot]
	for _, k := range src.rest {
		if v == nil || v[0] != '{' {
			return nil
		}
		v, _ = lookup(v, k)
		if string(v) == "null" {
			v = nil
		}
	}
	return v
}

// mapRecord maps the record r holds (decoded, with its id) into vals.
func (s *Stage) mapRecord(p *plan, r *scratch, id, pathContact string) {
	for pass := 0; pass < 2; pass++ {
		for i := range p.cols {
			cp := &p.cols[i]
			if cp.c == nil || cp.late != (pass == 1) {
				continue
			}
			switch {
			case cp.c.Compute != "":
				s.compute(p, r, i, pathContact)
			case cp.c.CustomField != "":
				s.customColumn(p, r, i)
			default:
				for _, src := range cp.srcs {
					raw := r.value(src)
					if raw == nil {
						continue
					}
					if s.convert(r, i, cp, src.name, raw) {
						break
					}
				}
			}
			if !r.vals[i].ok && cp.c.Type == whsql.TypeBool && cp.c.Default != nil && !r.present(cp) {
				r.vals[i] = val{ok: true, b: *cp.c.Default}
			}
		}
	}
}

// present says whether any source of cp is in the record.
func (r *scratch) present(cp *colPlan) bool {
	for _, src := range cp.srcs {
		if r.value(src) != nil {
			return true
		}
	}
	return false
}

// convert reads raw (field) as column i's type and normaliser; false when
// it could not (a field reject says why).
func (s *Stage) convert(r *scratch, i int, cp *colPlan, field string, raw []byte) bool {
	c := cp.c
	v := &r.vals[i]
	switch c.Type {
	case whsql.TypeString:
		str, ok := r.str(field, cp.name, raw)
		if !ok {
			return false
		}
		switch c.Normalize {
		case whsql.NormTrim:
			str = strings.TrimSpace(str)
		case whsql.NormEmail:
			str, _ = r.email(str)
		case whsql.NormPhoneE164, whsql.NormPhoneExt:
			e164, ext, ok := r.phone(str, s.regionOf(r, cp), s.region)
			if !ok {
				return true
			}
			str = e164
			if c.Normalize == whsql.NormPhoneExt {
				str = ext
			}
		}
		*v = val{ok: str != "", s: str}
	case whsql.TypeBool:
		if c.Normalize == whsql.NormEmailOK {
			str, ok := r.str(field, cp.name, raw)
			if !ok {
				return false
			}
			if strings.TrimSpace(str) == "" {
				return true
			}
			_, valid := r.email(str)
			*v = val{ok: true, b: valid}
			return true
		}
		switch string(raw) {
		case "true":
			*v = val{ok: true, b: true}
		case "false":
			*v = val{ok: true}
		default:
			r.wrong(field, cp.name, raw, "boolean")
			return false
		}
	case whsql.TypeInt, whsql.TypeFloat:
		txt := raw
		if raw[0] == '"' {
			str, ok := r.str(field, cp.name, raw)
			if !ok {
				return false
			}
			txt = []byte(strings.TrimSpace(str))
		}
		f, err := strconv.ParseFloat(string(txt), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			r.wrong(field, cp.name, raw, "number")
			return false
		}
		if c.Type == whsql.TypeFloat {
			*v = val{ok: true, f: f}
			return true
		}
		n, err := strconv.ParseInt(string(txt), 10, 64)
		if err != nil {
			if f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
				r.reject(field, cp.name, raw, "want integer, got "+kind(raw), false)
				return false
			}
			n = int64(f)
		}
		*v = val{ok: true, i: n}
	case whsql.TypeTimestamp, whsql.TypeDate:
		var str string
		if raw[0] == '"' {
			var ok bool
			if str, ok = r.str(field, cp.name, raw); !ok {
				return false
			}
		} else if kind(raw) == "number" {
			str = string(raw)
		} else {
			r.wrong(field, cp.name, raw, "time")
			return false
		}
		zone := time.UTC
		if cp.local {
			zone = s.cfg.NaiveZone
		}
		t, naive, err := parseTime(str, zone)
		if err != nil {
			r.reject(field, cp.name, raw, err.Error(), false)
			return false
		}
		*v = val{ok: !t.IsZero(), t: t, naive: naive}
	case whsql.TypeStrings:
		if raw[0] != '[' {
			r.wrong(field, cp.name, raw, "array of strings")
			return false
		}
		ss := r.lists[i][:0]
		bad := ""
		mended := false
		eachElement(raw, func(el []byte) bool {
			switch {
			case string(el) == "null":
				bad = "want array of strings, got null in it"
			case el[0] != '"':
				bad = "want array of strings, got array"
			}
			if bad != "" {
				return false
			}
			str, ok := plainString(el)
			if !ok {
				fixed, m := valid(el)
				mended = mended || m
				if str, r.ubuf, ok = decodeString(fixed, r.ubuf); !ok {
					bad = "want array of strings, got array"
					return false
				}
			}
			ss = append(ss, str)
			return true
		})
		r.lists[i] = ss
		if bad != "" {
			r.reject(field, cp.name, raw, bad, false)
			return false
		}
		if mended {
			r.reject(field, cp.name, raw, ReasonUTF8Replaced, true)
		}
		if c.Normalize == whsql.NormTags {
			ss = NormalizeTags(ss)
		}
		*v = val{ok: true, ss: ss}
	case whsql.TypeJSON:
		fixed, bad := valid(raw)
		if cp.jsonSep != 0 && raw[0] != cp.jsonSep {
			r.wrong(field, cp.name, raw, map[byte]string{'[': "array", '{': "object"}[cp.jsonSep])
			return false
		}
		// raw is part of a record decode accepted: valid JSON, compacted
		// without error
		r.texts[i] = appendCompact(r.texts[i][:0], fixed)
		js := r.texts[i]
		if c.EmptyNull && (string(js) == "[]" || string(js) == "{}") {
			return true
		}
		if bad {
			r.reject(field, cp.name, raw, ReasonUTF8Replaced, true)
		}
		*v = val{ok: true, s: view(js)}
	}
	return true
}

// str reads a JSON string, mending invalid UTF-8 (and saying so).
func (r *scratch) str(field, column string, raw []byte) (string, bool) {
	if s, ok := plainString(raw); ok {
		return s, true
	}
	fixed, bad := valid(raw)
	s, buf, ok := decodeString(fixed, r.ubuf)
	r.ubuf = buf
	if !ok {
		r.wrong(field, column, raw, "string")
		return "", false
	}
	if bad {
		r.reject(field, column, raw, ReasonUTF8Replaced, true)
	}
	return s, true
}

// regionOf is the default region of a phone column: its region column's value.
func (s *Stage) regionOf(r *scratch, cp *colPlan) string {
	if cp.region < 0 {
		return s.region
	}
	return r.vals[cp.region].s
}

// compute fills a computed column.
func (s *Stage) compute(p *plan, r *scratch, i int, pathContact string) {
	v := &r.vals[i]
	switch p.cols[i].c.Compute {
	case whsql.ComputeParent:
		body := ""
		if p.body >= 0 {
			if raw := r.slots[p.body]; raw != nil {
				body, r.ubuf, _ = decodeString(raw, r.ubuf)
			}
		}
		if c := parent(pathContact, body); c != "" {
			*v = val{ok: true, s: c}
		}
	case whsql.ComputeTaskStatus:
		if p.completed < 0 || !r.vals[p.completed].ok {
			return // NULL when completed is unknown
		}
		var due time.Time
		if p.due >= 0 {
			due = r.vals[p.due].t
		}
		*v = val{ok: true, s: TaskStatus(r.vals[p.completed].b, due, s.cfg.ExtractedAt)}
	case whsql.ComputeTimeZone:
		zone := ""
		for _, j := range p.zoned {
			switch {
			case r.vals[j].naive:
				zone = s.cfg.NaiveZone.String()
			case r.vals[j].ok && zone == "":
				zone = whsql.ZoneOffset
			}
		}
		if zone != "" {
			*v = val{ok: true, s: zone}
		}
	case whsql.ComputeExtra:
		if len(r.extra) == 0 {
			return
		}
		out := append(r.texts[i][:0], '{')
		for k, mi := range r.extra {
			m := r.members[mi]
			if k > 0 {
				out = append(out, ',')
			}
			out = appendKey(out, m.key)
			out = append(out, ':')
			out = appendCompact(out, m.raw)
		}
		out = append(out, '}')
		r.texts[i] = out
		if !utf8.Valid(out) {
			out = bytes.ToValidUTF8(out, []byte("\uFFFD"))
		}
		*v = val{ok: true, s: view(out)}
	}
}

// customColumn fills a column mapped from a custom field: the value of
// the element of customFields whose id (or, by the location's definitions,
// fieldKey or name) is the column's custom_field.
func (s *Stage) customColumn(p *plan, r *scratch, i int) {
	cp := &p.cols[i]
	raw := r.slots[cp.srcs[0].slot]
	if raw == nil || raw[0] != '[' {
		return
	}
	want := cp.c.CustomField
	eachElement(raw, func(el []byte) bool {
		if el[0] != '{' {
			return true
		}
		idRaw, _ := lookup(el, "id")
		id, _ := plainString(idRaw)
		if id == "" || !s.customMatch(id, want) {
			return true
		}
		value, ok := lookup(el, "value")
		if ok && string(value) != "null" {
			field := "customFields." + id
			if cp.c.Type == whsql.TypeString && value[0] != '"' {
				// a number or list in a text column: its JSON text
				r.texts[i] = appendCompact(r.texts[i][:0], value)
				if str := view(r.texts[i]); str != "" {
					r.vals[i] = val{ok: true, s: str}
				}
				return false
			}
			if cp.c.Type == whsql.TypeStrings && value[0] == '"' {
				str, ok := r.str(field, cp.name, value)
				if ok {
					r.lists[i] = append(r.lists[i][:0], str)
					r.vals[i] = val{ok: true, ss: r.lists[i]}
				}
				return false
			}
			s.convert(r, i, cp, field, value)
		}
		return false
	})
}

func (s *Stage) customMatch(id, want string) bool {
	if id == want {
		return true
	}
	d, ok := s.defs[id]
	return ok && (d.FieldKey == want || d.Name == want || strings.TrimPrefix(d.FieldKey, "contact.") == want)
}

// appendRow appends the mapped values and the system columns of one row.
func (s *Stage) appendRow(p *plan, r *scratch, rows *rows) {
	b := rows.b
	for i, cp := range p.cols {
		if cp.c == nil {
			appendSystem(b.Field(i), cp.name, s)
			continue
		}
		appendVal(b.Field(i), &r.vals[i], cp.c.Type)
	}
	rows.n++
}

func appendSystem(fb array.Builder, name string, s *Stage) {
	switch name {
	case whsql.ColSource:
		fb.(*array.StringBuilder).Append(s.cfg.Source)
	case whsql.ColLocationID:
		fb.(*array.StringBuilder).Append(s.loc)
	case whsql.ColRunID:
		fb.(*array.StringBuilder).Append(s.cfg.RunID)
	case whsql.ColExtractedAt, whsql.ColFirstSeenAt, whsql.ColChangedAt:
		// A new key was first seen and changed when read; the sinks keep
		// the stored _first_seen_at (and _changed_at when no value changed).
		fb.(*array.TimestampBuilder).Append(arrow.Timestamp(s.cfg.ExtractedAt.UnixMicro()))
	default:
		fb.AppendNull()
	}
}

func appendVal(fb array.Builder, v *val, typ string) {
	if !v.ok {
		fb.AppendNull()
		return
	}
	switch typ {
	case whsql.TypeString, whsql.TypeJSON:
		fb.(*array.StringBuilder).Append(v.s)
	case whsql.TypeBool:
		fb.(*array.BooleanBuilder).Append(v.b)
	case whsql.TypeInt:
		fb.(*array.Int64Builder).Append(v.i)
	case whsql.TypeFloat:
		fb.(*array.Float64Builder).Append(v.f)
	case whsql.TypeTimestamp:
		fb.(*array.TimestampBuilder).Append(arrow.Timestamp(v.t.UTC().UnixMicro()))
	case whsql.TypeDate:
		fb.(*array.Date32Builder).Append(arrow.Date32FromTime(v.t))
	case whsql.TypeStrings:
		lb := fb.(*array.ListBuilder)
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.StringBuilder)
		for _, x := range v.ss {
			vb.Append(x)
		}
	}
}

// TaskStatus derives a task's status: completed, overdue (due before at) or pending.
func TaskStatus(completed bool, due, at time.Time) string {
	switch {
	case completed:
		return "completed"
	case !due.IsZero() && due.Before(at):
		return "overdue"
	}
	return "pending"
}

// parent is the contact a child belongs to: the one in the request path.
// The record's own contactId is kept apart (body_contact_id) and is used
// only when the path named none.
func parent(path, body string) string {
	if path != "" {
		return path
	}
	return body
}

// recordID digs the id out of a record rejected whole, if it can.
func recordID(raw []byte) string {
	var k struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &k) != nil || k.ID == nil {
		return ""
	}
	return strings.ToValidUTF8(fmt.Sprint(k.ID), "\uFFFD")
}

// customFieldDef maps one custom field definition record and keeps it to
// name and type the values of later contacts.
func (s *Stage) customFieldDef(r api.Record) (string, error) {
	var d api.CustomFieldDef
	if !utf8.Valid(r.Raw) {
		return "", errors.New("decode: invalid UTF-8")
	}
	if err := json.Unmarshal(r.Raw, &d); err != nil {
		return "", fmt.Errorf("decode: %w", err)
	}
	if strings.TrimSpace(d.ID) == "" {
		return "", errMissingID
	}
	s.defs[d.ID] = d
	var opts []string
	if d.PicklistOptions != nil {
		opts = d.PicklistOptions
	}
	s.out[whsql.CustomFieldDefinitions.Name].add(d.ID, d.Name, d.FieldKey, d.DataType, d.Model, d.Placeholder, opts,
		int64(d.Position), s.cfg.Source, r.LocationID, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{})
	return d.ID, nil
}

// customRows writes one contact_custom_fields row per custom field value
// of the contact (the first of a field id named twice).
func (s *Stage) customRows(p *plan, r *scratch, contactID string) {
	raw := r.slots[p.cfs]
	if raw == nil || raw[0] != '[' {
		return
	}
	out := s.out[whsql.ContactCustomFields.Name]
	s.seen = s.seen[:0]
	eachElement(raw, func(el []byte) bool {
		if el[0] != '{' {
			return true
		}
		idRaw, _ := lookup(el, "id")
		id, ok := plainString(idRaw)
		if !ok || strings.TrimSpace(id) == "" {
			return true
		}
		for _, o := range s.seen {
			if o == id {
				return true
			}
		}
		s.seen = append(s.seen, id)
		value, _ := lookup(el, "value")
		if string(value) == "null" {
			value = nil
		}
		d := s.defs[id]
		b := out.b
		str := func(j int, v string) {
			if v == "" {
				b.Field(j).AppendNull()
			} else {
				b.Field(j).(*array.StringBuilder).Append(v)
			}
		}
		str(0, contactID)
		str(1, id)
		str(2, d.FieldKey)
		str(3, d.Name)
		str(4, d.DataType)
		var (
			num, flag, flagV bool
			f                float64
			dt               time.Time
			list             []string
		)
		if value == nil {
			str(5, "")
			str(6, "")
		} else {
			fixed, _ := valid(value)
			r.buf = appendCompact(r.buf[:0], fixed)
			js := r.buf
			if fixed[0] == '"' {
				var text string
				text, r.ubuf, _ = decodeString(fixed, r.ubuf)
				str(5, text)
				switch strings.ToUpper(d.DataType) {
				case "NUMERICAL", "MONETORY", "MONETARY", "NUMBER":
					if v, err := strconv.ParseFloat(strings.TrimSpace(text), 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
						num, f = true, v
					}
				case "DATE":
					if t, _, err := parseTime(text, time.UTC); err == nil {
						dt = t
					}
				}
			} else {
				b.Field(5).(*array.StringBuilder).BinaryBuilder.Append(js)
			}
			b.Field(6).(*array.StringBuilder).BinaryBuilder.Append(js)
			switch fixed[0] {
			case '[':
				if ss, ok := plainStrings(fixed, r.cfList[:0]); ok {
					list, r.cfList = ss, ss
				} else {
					var ss []string
					if json.Unmarshal(fixed, &ss) == nil {
						list = ss
					}
				}
			case 't', 'f':
				flag, flagV = true, fixed[0] == 't'
			case '"', '{':
			default:
				if v, err := strconv.ParseFloat(string(fixed), 64); err == nil {
					num, f = true, v
					if strings.ToUpper(d.DataType) == "DATE" && f >= 1e9 {
						dt = time.UnixMilli(int64(f)).UTC()
					}
				}
			}
		}
		// as appendValue would append *float64, day, *bool and []string,
		// without boxing them
		if fb := b.Field(7).(*array.Float64Builder); num {
			fb.Append(f)
		} else {
			fb.AppendNull()
		}
		if fb := b.Field(8).(*array.Date32Builder); !dt.IsZero() {
			fb.Append(arrow.Date32FromTime(dt))
		} else {
			fb.AppendNull()
		}
		if fb := b.Field(9).(*array.BooleanBuilder); flag {
			fb.Append(flagV)
		} else {
			fb.AppendNull()
		}
		if fb := b.Field(10).(*array.ListBuilder); list != nil {
			fb.Append(true)
			vb := fb.ValueBuilder().(*array.StringBuilder)
			for _, x := range list {
				vb.Append(x)
			}
		} else {
			fb.AppendNull()
		}
		b.Field(11).(*array.StringBuilder).Append(s.cfg.Source)
		b.Field(12).(*array.StringBuilder).Append(s.loc)
		b.Field(13).(*array.StringBuilder).Append(s.cfg.RunID)
		b.Field(14).(*array.TimestampBuilder).Append(arrow.Timestamp(s.cfg.ExtractedAt.UnixMicro()))
		b.Field(15).AppendNull()
		out.n++
		s.counts[whsql.ContactCustomFields.Name]++
		return true
	})
}
