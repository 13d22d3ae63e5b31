package jsoncmp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestSameOnSimulatorData: on the benchmarks' inputs every decoder reads
// the same page keys and records as encoding/json, and every library the
// same contact fields (so the benchmarks compare equal work).
func TestSameOnSimulatorData(t *testing.T) {
	in := simInputs(t)
	want, err := pageReader("encoding_json")(in.page)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range decoders() {
		got, err := pageReader(name)(in.page)
		if err != nil || !slices.Equal(got.ids, want.ids) || !slices.Equal(got.updated, want.updated) ||
			!bytes.Equal(got.after, want.after) || !slices.EqualFunc(got.items, want.items, rawEqual) {
			t.Errorf("%s reads the search page differently (err %v)", name, err)
		}
		for _, c := range in.children {
			got, err := childReader(name)(c.body, c.res)
			want, _ := childReader("encoding_json")(c.body, c.res)
			if err != nil || !slices.EqualFunc(got, want, rawEqual) {
				t.Errorf("%s splits a %s answer differently (err %v)", name, c.res, err)
			}
		}
	}
	for _, l := range libs[1:] {
		for _, raw := range in.contacts {
			var got, want contactFields
			gerr, werr := l.u(raw, &got), json.Unmarshal(raw, &want)
			if gerr != nil || werr != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s decodes a contact differently (err %v, %v)", l.name, gerr, werr)
			}
		}
	}
}

// mutate returns raw with n random edits of bytes JSON and UTF-8 are
// touchy about.
func mutate(r *rand.Rand, raw []byte, n int) []byte {
	const touchy = "\"\\{}[],: \x00\x01\x1f\x7f\x80\xbf\xc0\xe2\xed\xf0\xff/u0dD8\xa0tfnlI"
	b := slices.Clone(raw)
	for range n {
		i := r.IntN(len(b) + 1)
		c := touchy[r.IntN(len(touchy))]
		switch r.IntN(3) {
		case 0:
			b = slices.Insert(b, i, c)
		case 1:
			if i < len(b) {
				b = slices.Delete(b, i, i+1)
			}
		default:
			if i < len(b) {
				b[i] = c
			}
		}
	}
	return b
}

// TestMutatedContacts decodes the simulator's contacts with a few bytes
// changed at random into contactFields with every library and compares
// with encoding/json: accepted or refused alike, and the same values.
// It fails when a candidate differs.
func TestMutatedContacts(t *testing.T) {
	in := simInputs(t)
	r := rand.New(rand.NewPCG(10, 6))
	const rounds = 40
	diffs := map[string]int{}
	examples := map[string]string{}
	total := 0
	for range rounds {
		for _, raw := range in.contacts {
			m := mutate(r, raw, 1+r.IntN(3))
			total++
			var want contactFields
			werr := json.Unmarshal(m, &want)
			for _, l := range libs[1:] {
				var got contactFields
				gerr := l.u(m, &got)
				if (gerr == nil) != (werr == nil) || (werr == nil && !reflect.DeepEqual(got, want)) {
					diffs[l.name]++
					if examples[l.name] == "" {
						examples[l.name] = fmt.Sprintf("%q: err %v, encoding/json err %v", m, gerr, werr)
					}
				}
			}
		}
	}
	for _, l := range libs[1:] {
		t.Logf("%s: %d of %d mutated contacts decoded unlike encoding/json", l.name, diffs[l.name], total)
		if diffs[l.name] > 0 {
			t.Logf("%s, first: %s", l.name, examples[l.name])
			if slices.Contains(candidates, l.name) {
				t.Errorf("candidate %s differs from encoding/json on %d mutated contacts", l.name, diffs[l.name])
			}
		}
	}
}

func rawEqual(a, b json.RawMessage) bool { return bytes.Equal(a, b) }
