package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// oddRecords are records of odd shapes and syntax errors of every kind,
// with the fuzz seeds' records among them.
var oddRecords = []string{
	`{"id":"c1","tags":[" a","a"],"email":" X@Bücher.DE","phone":"(415) 555-2671 x9","country":"US"}`,
	`{"id":2}`, `null`, `[]`, `"x"`, `1`, `true`, ``, ` `, `{}`, ` { } `, `{"id":"x"} `, "\t{\"id\":\"x\"}\r\n",
	`{"id":"c1","customFields":[{"id":"f","value":[1,"x"]},{"id":"f","value":null},{"value":1}],"businessId":"b","lastAttributionSource":{"a":1}}`,
	`{"id":"t1","dueDate":"2021-03-14 02:30:00","completed":"yes","extra":[1]}`,
	`{"id":"a1","startTime":"2024-02-29 10:00:00","endTime":1700000000000,"users":["u",null]}`,
	"{\"id\":\"c1\",\"firstName\":\"Jos\xe9\",\"dnd\":\"yes\",\"dateOfBirth\":19900501}",
	`{"id":"n1","body":"a\u0000b","pinned":1,"\u0069d":"dup"}`,
	`{"id":"c1","dnd":"yes","customFields":{"a":1},"dateOfBirth":"Date format YYYY-MM-DD","tags":"x"}`,
	`{"id":"c1","tags":[null],"additionalEmails":[1],"dndSettings":[],"attributionSource":"x"}`,
	` { "id" : "c\"2" , "x y" : [ 1 , 2.5e3 , { "a" : null } ] , "tags" : [ "a\tb" , "\u00e9" ], "dndSettings" : { "a" : [ ] } } `,
	`{"id":"c3","<k>&":1,"k\u2028":2,"é":3,"\ud800":4,"k\/":5,"phone":"+44 20 7946 0958","country":"gb"}`,
	"{\"id\":\"c4\",\"k\xff\":1,\"v\":\"\xff\xfe\",\"n\":-0.0e-0,\"m\":1E+2,\"o\":0.5,\"p\":-12}",
	`{"id":"x","id":"y"}`, `{"id":"x"}x`, `{"id":"x"}}`, `{"id":"x",}`, `{"id":"x"`, `{"id":"x":}`, `{"id"}`, `{id:"x"}`, `{'id':"x"}`,
	`{"id":01}`, `{"id":"x","a":tru}`, `{"id":"x","a":truex}`, `{"id":"x","a":nul}`, `{"id":"x","a":"\x"}`, `{"id":"x","a":"\u12"}`,
	`{"id":"x","a":"\u12g4"}`, `{"id":"x","a":1.}`, `{"id":"x","a":-}`, `{"id":"x","a":.5}`, `{"id":"x","a":1e}`, `{"id":"x","a":1e+}`,
	`{"id":"x","a":+1}`, `{"id":"x","a":1.5.5}`, `{"id":"x","a":0x10}`, `{"id":"x","a":--1}`, `{"id":"x","a":Infinity}`,
	"{\"id\":\"x\",\"a\":\"\x01\"}", "{\"id\":\"x\",\"a\":\"\x7f\"}", "{\"id\":\"x\",\"a\"\x00:1}", "{\"id\":\"x\"\v}",
	`{"id":"x","a":[1,]}`, `{"id":"x","a":[,1]}`, `{"id":"x","a":[1 2]}`, `{"id":"x","a":{"b"}}`, `{"id":"x","a":{"b":1,}}`,
	`{"id":"x","a":{"b":1 "c":2}}`, `{"id":"x","a":[}`, `{"id":"x","a":{]}`, `{"id":"x" "a":1}`, `{"id":"x",,"a":1}`,
	`{"id":"\u0020"}`, `{"id":"  "}`, `{"id":null}`, `{"id":["x"]}`, `{"id":"x\\"}`, `{"id":"x\\\"}`, `{"id":"x"}{"id":"y"}`,
	`{"id":"x","dateAdded":"2022-01-07T10:41:49.378+02:00","dateUpdated":"2022-01-07 10:41:49","lastActivity":1641552109378}`,
}

// simRecordsT is simRecords for tests: the simulator's contacts (some of
// odd shapes) and their children, and the custom field definitions.
func simRecordsT(t *testing.T) []api.Record {
	loc := sim.New(sim.Config{}).Locations()[0]
	srv := sim.New(sim.Config{Seed: 3, Contacts: 120, Bad: sim.BadData{OddFields: 10, WrongTypes: 3, InvalidUTF8: 3, BodyContactIDs: 3, MissingID: 2},
		StaticTokens: map[string]sim.StaticToken{"pit-odd": {LocationID: loc, Scopes: []string{api.ScopeContactsRO, api.ScopeCustomFieldsRO}}}})
	var recs []api.Record
	var cf struct{ CustomFields []json.RawMessage }
	if err := json.Unmarshal(simGet(t, srv, "GET", "/locations/"+loc+"/customFields", ""), &cf); err != nil {
		t.Fatal(err)
	}
	for _, raw := range cf.CustomFields {
		recs = append(recs, api.Record{Resource: api.ResourceCustomFields, LocationID: loc, Raw: raw})
	}
	var page api.SearchResponse
	if err := json.Unmarshal(simGet(t, srv, "POST", "/contacts/search", `{"locationId":"`+loc+`","pageLimit":500}`), &page); err != nil {
		t.Fatal(err)
	}
	for _, raw := range page.Contacts {
		recs = append(recs, api.Record{Resource: api.ResourceContacts, LocationID: loc, Raw: raw})
	}
	for _, ct := range srv.Truth(loc) {
		for _, rk := range [][2]string{{api.ResourceTasks, "tasks"}, {api.ResourceNotes, "notes"}, {api.ResourceAppointments, "events"}} {
			var list map[string][]json.RawMessage
			if json.Unmarshal(simGet(t, srv, "GET", "/contacts/"+ct.Contact.ID+"/"+rk[0], ""), &list) != nil {
				continue // a malformed list
			}
			for _, raw := range list[rk[1]] {
				recs = append(recs, api.Record{Resource: rk[0], LocationID: loc, ContactID: ct.Contact.ID, Raw: raw})
			}
		}
	}
	return recs
}

// mutated returns n records derived from recs (fixed seed): cut short, a
// byte replaced by a random one or a JSON delimiter, whitespace added, a
// byte dropped.
func mutated(recs [][]byte, n int) [][]byte {
	r := rand.New(rand.NewPCG(5, 6))
	const delims = "{}[]\",:\\ \n0-.eE+tfnu\x00"
	var out [][]byte
	for range n {
		raw := append([]byte(nil), recs[r.IntN(len(recs))]...)
		switch r.IntN(5) {
		case 0:
			raw = raw[:r.IntN(len(raw)+1)]
		case 1:
			if len(raw) > 0 {
				raw[r.IntN(len(raw))] = byte(r.IntN(256))
			}
		case 2:
			if len(raw) > 0 {
				raw[r.IntN(len(raw))] = delims[r.IntN(len(delims))]
			}
		case 3:
			i := r.IntN(len(raw) + 1)
			raw = append(raw[:i], append([]byte{" \t\r\n"[r.IntN(4)]}, raw[i:]...)...)
		case 4:
			if len(raw) > 1 {
				i := r.IntN(len(raw) - 1)
				raw = append(raw[:i], raw[i+1:]...)
			}
		}
		out = append(out, raw)
	}
	return out
}

// diffInputs are the raw records differential tests compare the fast and
// slow paths over: odd records, the simulator's, and mutations of both.
func diffInputs(t *testing.T) [][]byte {
	var raws [][]byte
	for _, s := range oddRecords {
		raws = append(raws, []byte(s))
	}
	for _, r := range simRecordsT(t) {
		raws = append(raws, r.Raw)
	}
	return append(raws, mutated(raws, 8000)...)
}

// slowSplit is what decode did before splitValid: json.Valid, then
// splitObject of an object.
func slowSplit(raw []byte) ([]member, bool) {
	if !json.Valid(raw) {
		return nil, false
	}
	ms, err := splitObject(raw, nil)
	if err != nil {
		return nil, false
	}
	return ms, true
}

func checkSplit(t *testing.T, raw []byte) bool {
	t.Helper()
	fast, ok := splitValid(raw, nil)
	slow, sok := slowSplit(raw)
	if ok != sok {
		t.Errorf("%q: splitValid %v, json.Valid and splitObject %v", raw, ok, sok)
		return ok
	}
	if !ok {
		return false
	}
	if len(fast) != len(slow) {
		t.Errorf("%q: %d members, want %d", raw, len(fast), len(slow))
		return ok
	}
	for i := range fast {
		if fast[i].key != slow[i].key || string(fast[i].raw) != string(slow[i].raw) {
			t.Errorf("%q: member %d is %q: %q, want %q: %q", raw, i, fast[i].key, fast[i].raw, slow[i].key, slow[i].raw)
		}
	}
	return ok
}

// TestSplitValidMatchesSlowPath: splitValid accepts exactly the records
// json.Valid accepts that are objects, with the members splitObject finds.
func TestSplitValidMatchesSlowPath(t *testing.T) {
	valid, invalid := 0, 0
	for _, raw := range diffInputs(t) {
		if checkSplit(t, raw) {
			valid++
		} else {
			invalid++
		}
	}
	if valid < 1000 || invalid < 1000 {
		t.Errorf("only %d valid and %d invalid records compared", valid, invalid)
	}
}

// TestSplitValidDeep: a record nested deeper than maxSplitDepth is left
// to the slow path, which maps it.
func TestSplitValidDeep(t *testing.T) {
	deep := `{"id":"c1","x":` + strings.Repeat("[", maxSplitDepth+5) + strings.Repeat("]", maxSplitDepth+5) + `}`
	if _, ok := splitValid([]byte(deep), nil); ok {
		t.Fatal("splitValid took a record deeper than maxSplitDepth")
	}
	p := newPlan(whsql.Contacts)
	var r scratch
	id, err := p.decode(&r, []byte(deep))
	if err != nil || id != "c1" || len(r.extra) != 1 {
		t.Fatalf("decode = %q, %v (extra %v)", id, err, r.extra)
	}
}

func FuzzSplitValid(f *testing.F) {
	for _, s := range oddRecords {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSplit(t, raw)
	})
}

func checkCompact(t *testing.T, raw []byte) bool {
	t.Helper()
	if !json.Valid(raw) {
		return false
	}
	var want bytes.Buffer
	if err := json.Compact(&want, raw); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	if got := appendCompact([]byte("prefix"), raw); string(got) != "prefix"+want.String() {
		t.Errorf("appendCompact(%q) = %q, want %q", raw, got[len("prefix"):], want.Bytes())
	}
	return true
}

// TestAppendCompactMatchesJSON: appendCompact gives json.Compact's text
// for every valid record and every member value of the test records.
func TestAppendCompactMatchesJSON(t *testing.T) {
	n := 0
	for _, raw := range diffInputs(t) {
		if !checkCompact(t, raw) {
			continue
		}
		n++
		ms, _ := splitObject(raw, nil)
		for _, m := range ms {
			checkCompact(t, m.raw)
		}
	}
	if n < 1000 {
		t.Errorf("only %d valid records compared", n)
	}
}

// TestAppendKeyMatchesMarshal: keys land in _extra as json.Marshal
// writes them.
func TestAppendKeyMatchesMarshal(t *testing.T) {
	keys := []string{"", "a", "searchAfter", "x y", `"`, `\`, "<", ">", "&", "\x00", "\x1f", "\x7f", "é", "\u2028", "\u2029", "\xff", "a\tb", "~"}
	for c := range 256 {
		keys = append(keys, "k"+string(rune(c)), "k"+string([]byte{byte(c)}))
	}
	for _, k := range keys {
		want, _ := json.Marshal(k)
		if got := appendKey([]byte("{"), k); string(got) != "{"+string(want) {
			t.Errorf("appendKey(%q) = %q, want %q", k, got[1:], want)
		}
	}
}

func FuzzAppendCompact(f *testing.F) {
	for _, s := range oddRecords {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkCompact(t, raw)
		want, _ := json.Marshal(string(raw))
		if got := appendKey(nil, string(raw)); string(got) != string(want) {
			t.Errorf("appendKey(%q) = %q, want %q", raw, got, want)
		}
	})
}

func checkDecodeString(t *testing.T, raw []byte) {
	t.Helper()
	var want string
	werr := json.Unmarshal(raw, &want)
	// decodeString's raw is a value of a record decode accepted: valid
	// JSON, without whitespace around it
	cut := json.Valid(raw) && skipWS(raw, 0) == 0 && !bytes.ContainsAny(raw[len(raw)-1:], " \t\r\n")
	if got, _, ok := decodeString(raw, nil); cut && (ok != (werr == nil) || got != want) {
		t.Errorf("decodeString(%q) = %q, %v; json.Unmarshal %q, %v", raw, got, ok, want, werr)
	}
	if b, ok := unquote(nil, raw); ok && (werr != nil || string(b) != want) {
		t.Errorf("unquote(%q) = %q; json.Unmarshal %q, %v", raw, b, want, werr)
	}
}

// TestDecodeStringMatchesUnmarshal: decodeString (and unquote where it
// does not decline) decode strings as json.Unmarshal does, and fail where
// it fails: member values and array elements of the test records, and
// escapes of every kind.
func TestDecodeStringMatchesUnmarshal(t *testing.T) {
	raws := [][]byte{}
	for _, s := range []string{`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0000"`, `"\u00e9\u00E9"`, `"\u2028"`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\uDFFF\uD800"`, `"\uffff"`, `"\u12"`, `"\u12g4"`,
		`"\x"`, `"\'"`, `"a\"`, `"`, `"a`, `a"`, `x`, `1`, `null`, `true`, `[]`, `{}`, `"é\u00e9"`, "\"\xff\"", "\"\xe9t\\u00e9\"",
		"\"a\tb\"", "\"a\x00\"", "\"\x7f\"", `"a\\nb\\"`, `"tab\tsep \\ back"`} {
		raws = append(raws, []byte(s))
	}
	for _, rec := range diffInputs(t) {
		if !json.Valid(rec) {
			continue
		}
		ms, _ := splitObject(rec, nil)
		for _, m := range ms {
			raws = append(raws, m.raw)
			eachElement(m.raw, func(el []byte) bool {
				raws = append(raws, el)
				return true
			})
		}
	}
	escaped := 0
	for _, raw := range raws {
		checkDecodeString(t, raw)
		if _, ok := unquote(nil, raw); ok && bytes.IndexByte(raw, '\\') >= 0 {
			escaped++
		}
	}
	if escaped < 20 {
		t.Errorf("only %d strings with escapes decoded by unquote", escaped)
	}
}

func FuzzDecodeString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9\ud83d\ude00"`, `"\ud83d"`, "\"\xff\"", `"a\"`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeString(t, raw)
	})
}

// TestPlainStringsMatchesUnmarshal: where plainStrings reads an array,
// json.Unmarshal into a []string gives the same (non-nil) slice.
func TestPlainStringsMatchesUnmarshal(t *testing.T) {
	raws := [][]byte{[]byte(`[]`), []byte(` [ ] `), []byte(`["a"]`), []byte(`["a", "b" ,"é"]`), []byte(`[null]`), []byte(`["a",1]`),
		[]byte(`["a\n"]`), []byte(`[["a"]]`), []byte(`[{"a":"b"}]`), []byte("[\"\xff\"]")}
	for _, rec := range diffInputs(t) {
		if !json.Valid(rec) {
			continue
		}
		ms, _ := splitObject(rec, nil)
		for _, m := range ms {
			if m.raw[0] == '[' {
				raws = append(raws, m.raw)
			}
		}
	}
	read := 0
	for _, raw := range raws {
		got, ok := plainStrings(raw, nil)
		if !ok {
			continue
		}
		read++
		var want []string
		if err := json.Unmarshal(raw, &want); err != nil || got == nil || !slices.Equal(got, want) {
			t.Errorf("plainStrings(%q) = %q; json.Unmarshal %q, %v", raw, got, want, err)
		}
	}
	if read < 100 {
		t.Errorf("plainStrings read only %d arrays", read)
	}
}

// slowDecode is decode as it was before splitValid and decodeString:
// json.Valid, splitObject, the id through json.Unmarshal.
func slowDecode(p *plan, r *scratch, raw []byte) (string, error) {
	r.reset(p, raw)
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
	var id string
	switch {
	case !utf8.Valid(v):
		return "", errors.New("unusable id: invalid UTF-8")
	case json.Unmarshal(v, &id) != nil:
		return "", fmt.Errorf("unusable id: want string, got %s", kind(v))
	case strings.TrimSpace(id) == "":
		return "", errMissingID
	}
	return id, nil
}

// TestDecodeMatchesSlowPath: decode rejects exactly the records the slow
// path rejects, with the same reason, and splits the others into the same
// slots, unknown members and id, for the plan of every table.
func TestDecodeMatchesSlowPath(t *testing.T) {
	rejected := 0
	raws := diffInputs(t)
	for _, tb := range whsql.Data {
		p := newPlan(tb)
		var fast, slow scratch
		for _, raw := range raws {
			id, err := p.decode(&fast, raw)
			sid, serr := slowDecode(p, &slow, raw)
			if (err == nil) != (serr == nil) || (err != nil && err.Error() != serr.Error()) || id != sid {
				t.Errorf("%s %q: decode %q, %v; slow path %q, %v", tb.Name, raw, id, err, sid, serr)
				continue
			}
			if err != nil {
				rejected++
				continue
			}
			if !slices.EqualFunc(fast.slots, slow.slots, bytes.Equal) || !slices.Equal(fast.extra, slow.extra) ||
				!slices.EqualFunc(fast.members, slow.members, func(a, b member) bool { return a.key == b.key && bytes.Equal(a.raw, b.raw) }) {
				t.Errorf("%s %q: decode split it differently", tb.Name, raw)
			}
		}
	}
	if rejected < 1000 {
		t.Errorf("only %d records rejected whole", rejected)
	}
}
