package jsoncmp

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/transform"
)

// A semantic check decodes one small record and compares the value of one
// string field (or the error) with what encoding/json gives, the rules
// our data depends on: invalid UTF-8 and lone surrogates made U+FFFD, the
// last of duplicate keys, keys case-folded as encoding/json folds them
// (into a struct), malformed text refused.
type check struct {
	name string
	// rec has "id":"i" and sets firstName (decoded by the libraries into
	// contactFields, by our record decoder); page is the same case for the
	// splitter, on dateUpdated (on searchAfter when it starts "after:", on
	// id when it starts "id:").
	rec, page string
	want      string // "error" for an error
	// exact is what our record decoder gives where it differs by design:
	// it matches keys exactly, as the map[string]json.RawMessage the
	// mapper decoded into before (transform/decode_test.go slowDecode).
	exact string
}

const wantErr = "error"

var checks = []check{
	{name: "invalid UTF-8 → U+FFFD", rec: "{\"id\":\"i\",\"firstName\":\"a\xffb\"}",
		page: "{\"id\":\"i\",\"dateUpdated\":\"a\xffb\"}", want: "a\uFFFDb"},
	{name: "lone surrogate escape → U+FFFD", rec: `{"id":"i","firstName":"a\ud800b"}`,
		page: `{"id":"i","dateUpdated":"a\ud800b"}`, want: "a\uFFFDb"},
	{name: "duplicate key: last wins", rec: `{"id":"i","firstName":"x","firstName":"y"}`,
		page: `{"id":"i","dateUpdated":"x","dateUpdated":"y"}`, want: "y"},
	{name: "duplicate key, other case: last wins", rec: `{"id":"i","firstName":"x","FirstName":"y"}`,
		page: `{"id":"i","dateUpdated":"x","DateUpdated":"y"}`, want: "y", exact: "x"},
	{name: "key case folded (ASCII)", rec: `{"id":"i","FIRSTNAME":"x"}`,
		page: `{"id":"i","DATEUPDATED":"x"}`, want: "x", exact: "-"},
	{name: "key case folded (ſ is s)", rec: `{"id":"i","firſtName":"x"}`,
		page: `after:{"id":"i","ſearchAfter":"x"}`, want: "x", exact: "-"},
	{name: "İ does not fold to i", rec: `{"id":"i","fİrstName":"x"}`,
		page: `id:{"İd":"x"}`, want: "-"},
	{name: "truncated", rec: `{"id":"i","firstName":"x"`, page: `{"id":"i","dateUpdated":"x"`, want: wantErr},
	{name: "trailing garbage", rec: `{"id":"i","firstName":"x"} x`, page: `{"id":"i","dateUpdated":"x"} x`, want: wantErr},
	{name: "extra }", rec: `{"id":"i","firstName":"x"}}`, page: `{"id":"i","dateUpdated":"x"}}`, want: wantErr},
	{name: "trailing comma", rec: `{"id":"i","firstName":"x",}`, page: `{"id":"i","dateUpdated":"x",}`, want: wantErr},
	{name: "control character in string", rec: "{\"id\":\"i\",\"firstName\":\"a\x01b\"}",
		page: "{\"id\":\"i\",\"dateUpdated\":\"a\x01b\"}", want: wantErr},
	{name: "bad value in a skipped field", rec: `{"id":"i","zz":[1,],"firstName":"x"}`,
		page: `{"id":"i","zz":[1,],"dateUpdated":"x"}`, want: wantErr},
	{name: "bad literal in a skipped field", rec: `{"id":"i","zz":nul,"firstName":"x"}`,
		page: `{"id":"i","zz":nul,"dateUpdated":"x"}`, want: wantErr},
	{name: "bad number in a skipped field", rec: `{"id":"i","zz":01,"firstName":"x"}`,
		page: `{"id":"i","zz":01,"dateUpdated":"x"}`, want: wantErr},
}

// pageChecks are malformed search page bodies: every decoder must refuse them.
var pageChecks = []struct{ name, body string }{
	{"page truncated", `{"contacts":[{"id":"i"}],"total":1`},
	{"page truncated in a record", `{"contacts":[{"id":"i","dateUpdated":"2024-`},
	{"page with trailing garbage", `{"contacts":[{"id":"i"}],"total":1} x`},
	{"two pages", `{"contacts":[{"id":"i"}],"total":1}{"contacts":[]}`},
}

// candidates are the libraries the issue-10 report (BENCHMARKS.md) says
// keep every rule: they must pass every check, and decode the mutated
// contacts of TestMutatedContacts as encoding/json does. sonic is not one:
// by default it keeps invalid UTF-8 and control characters in strings,
// and in both configurations it folds keys unlike encoding/json ("ſ" is
// not "s", "İ" is "i"); ConfigStd mends invalid UTF-8 inside a
// json.RawMessage, which encoding/json copies as it is.
var candidates = []string{"encoding_json", "goccy", "segmentio"}

// onRecord decodes c.rec with library name into contactFields: firstName,
// "-" when it stays empty, or "error".
func onRecord(name string, rec string) string {
	var c contactFields
	if err := lib(name)([]byte(rec), &c); err != nil {
		return wantErr
	}
	return orDash(c.FirstName)
}

// onPage reads the record page inside a search page with read: its
// dateUpdated (searchAfter, unquoted, for "after:"; id for "id:").
func onPage(read func([]byte) (page, error), rec string) string {
	after, id := strings.HasPrefix(rec, "after:"), strings.HasPrefix(rec, "id:")
	rec = strings.TrimPrefix(strings.TrimPrefix(rec, "after:"), "id:")
	p, err := read([]byte(`{"contacts":[` + rec + `],"total":1}`))
	switch {
	case err != nil:
		return wantErr
	case len(p.items) != 1:
		return fmt.Sprintf("%d records", len(p.items))
	case after:
		return orDash(strings.Trim(string(p.after), `"`))
	case id:
		return orDash(p.ids[0])
	}
	return orDash(p.updated[0])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestSemantics logs, per check, what every decoder gives, and fails when
// encoding/json, our splitter or record decoder, or a candidate breaks a
// rule.
func TestSemantics(t *testing.T) {
	fields := fieldsOf(t)
	var table []string
	fail := map[string][]string{}
	for _, c := range checks {
		row := []string{c.name}
		for _, l := range libs {
			rec, pg := onRecord(l.name, c.rec), onPage(pageReader(l.name), c.page)
			row = append(row, fmt.Sprintf("%s=%q/%q", l.name, rec, pg))
			if rec != c.want || pg != c.want {
				fail[l.name] = append(fail[l.name], c.name)
			}
		}
		want := c.want
		if c.exact != "" {
			want = c.exact
		}
		rec, pg := fields(c.rec), onPage(pageReader(ours), c.page)
		row = append(row, fmt.Sprintf("ours=%q/%q", rec, pg))
		if rec != want || pg != c.want {
			t.Errorf("%s: ours gives %q (record) and %q (page), want %q and %q", c.name, rec, pg, want, c.want)
		}
		table = append(table, strings.Join(row, "  "))
	}
	for _, c := range pageChecks {
		row := []string{c.name}
		for _, name := range decoders() {
			_, err := pageReader(name)([]byte(c.body))
			row = append(row, fmt.Sprintf("%s=%v", name, err != nil))
			if err == nil {
				if name == ours {
					t.Errorf("%s: our splitter accepts it", c.name)
				}
				fail[name] = append(fail[name], c.name)
			}
		}
		table = append(table, strings.Join(row, "  "))
	}
	// invalid UTF-8 inside a raw value: encoding/json copies it as it is
	// (transform mends it and writes a field reject saying so)
	const rawRec = "{\"id\":\"i\",\"customFields\":[\"a\xffb\"]}"
	row := []string{"raw value kept as is"}
	for _, name := range decoders() {
		p, err := pageReader(name)([]byte(`{"contacts":[` + rawRec + `]}`))
		kept := err == nil && len(p.items) == 1 && string(p.items[0]) == rawRec
		if name != ours {
			var c contactFields
			kept = kept && lib(name)([]byte(rawRec), &c) == nil && string(c.CustomFields) == "[\"a\xffb\"]"
		}
		row = append(row, fmt.Sprintf("%s=%v", name, kept))
		if !kept {
			if name == ours {
				t.Errorf("our splitter changes a record: %q", p.items)
			}
			fail[name] = append(fail[name], row[0])
		}
	}
	table = append(table, strings.Join(row, "  "))
	t.Logf("record checks: decoder=firstName/page value (\"error\": refused); page checks: decoder=refused; raw: decoder=kept\n%s",
		strings.Join(table, "\n"))
	for _, l := range libs {
		if f := fail[l.name]; len(f) > 0 {
			t.Logf("%s differs from encoding/json on: %s", l.name, strings.Join(f, "; "))
			if slices.Contains(candidates, l.name) {
				t.Errorf("candidate %s breaks: %s", l.name, strings.Join(f, "; "))
			}
		}
	}
}

// fieldsOf returns firstName as our record decoder reads it ("-" when
// absent, "error" when the record is rejected whole).
func fieldsOf(t *testing.T) func(string) string {
	t.Helper()
	d, err := transform.NewFieldDecoder(api.ResourceContacts)
	if err != nil {
		t.Fatal(err)
	}
	return func(rec string) string {
		out := map[string]any{}
		if _, err := d.Decode([]byte(rec), out); err != nil {
			return wantErr
		}
		s, _ := out["firstName"].(string)
		return orDash(s)
	}
}
