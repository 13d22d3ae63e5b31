//go:build jsoncmp

package transform

import (
	"fmt"
	"slices"
	"strings"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// This file is built only with the jsoncmp tag, by bench/jsoncmp (make
// bench-json), which measures the record decoder against other JSON
// decoders; it is in no build of the exporter.

// FieldDecoder decodes records of one table the way a Stage does before
// it normalizes and builds rows: the record split and its id read
// (plan.decode), then each column read straight from a field, as convert
// reads it (strings unquoted and trimmed where the mapping says, lists,
// tags normalized, booleans, JSON text compacted), with times left as
// strings and no email or phone normalizer, computed column, custom field
// row or Arrow builder. Not safe for concurrent use.
type FieldDecoder struct {
	s *Stage
	p *plan
}

// NewFieldDecoder returns a decoder of the records of table (contacts,
// tasks, notes, appointments).
func NewFieldDecoder(table string) (*FieldDecoder, error) {
	t, ok := whsql.ByName(table)
	if !ok {
		return nil, fmt.Errorf("no table %q", table)
	}
	return &FieldDecoder{s: &Stage{region: whsql.CurrentMapping().DefaultRegion}, p: newPlan(t)}, nil
}

// Decode decodes raw and returns its id; when out is not nil it also
// stores there, by JSON field name, a copy of each value it read: a
// string (string, time and JSON columns; "" for an empty JSON object or
// array), a []string or a bool. err is the whole-record reject.
func (d *FieldDecoder) Decode(raw []byte, out map[string]any) (id string, err error) {
	r := &d.s.rec
	if id, err = d.p.decode(r, raw); err != nil {
		return "", err
	}
	for i := range d.p.cols {
		cp := &d.p.cols[i]
		c := cp.c
		if c == nil || c.Compute != "" || c.CustomField != "" || (c.Normalize != "" && c.Normalize != whsql.NormTrim && c.Normalize != whsql.NormTags) {
			continue
		}
		for _, src := range cp.srcs {
			v := r.value(src)
			if v == nil {
				continue
			}
			if c.Type == whsql.TypeTimestamp || c.Type == whsql.TypeDate {
				s, ok := r.str(src.name, cp.name, v)
				if ok && out != nil {
					out[src.name] = strings.Clone(s)
				}
				break
			}
			if d.s.convert(r, i, cp, src.name, v) {
				if out != nil {
					out[src.name] = copyVal(c.Type, r.vals[i])
				}
				break
			}
		}
	}
	return id, nil
}

func copyVal(t string, v val) any {
	switch t {
	case whsql.TypeStrings:
		return slices.Clone(v.ss)
	case whsql.TypeBool:
		return v.b
	}
	return strings.Clone(v.s)
}
