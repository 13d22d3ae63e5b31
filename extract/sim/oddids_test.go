package sim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// oddLocation is a location id holding what a path must escape.
const oddLocation = "loc/1 ?#%é"

// Contacts and a location whose ids hold '/', '%', ' ', '?', '#' and
// non-ASCII are served under paths with each segment escaped once (a real
// server unescapes each segment once), with the children of the truth; the
// same ids escaped twice are unknown.
func TestOddIDsServedUnderOnceEscapedPaths(t *testing.T) {
	const tok = "pit-odd"
	e := start(t, Config{Seed: 3, Contacts: 12, OddIDs: len(OddIDPieces), LocationIDs: []string{oddLocation},
		StaticTokens: map[string]StaticToken{tok: {LocationID: oddLocation,
			Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeCustomFieldsRO}}}})
	if got := e.s.Locations(); len(got) != 1 || got[0] != oddLocation {
		t.Fatalf("locations %q", got)
	}
	get := func(path string, v any) int {
		t.Helper()
		resp, b := e.call(http.MethodGet, path, nil, tok)
		if resp.StatusCode == http.StatusOK && v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	seen, kids := map[string]bool{}, 0
	for _, ct := range e.s.Truth(oddLocation) {
		id := ct.Contact.ID
		var piece string
		for _, p := range OddIDPieces {
			if strings.Contains(id, p) {
				piece = p
			}
		}
		if piece == "" {
			continue
		}
		seen[piece] = true
		kids += len(ct.Tasks) + len(ct.Notes) + len(ct.Events)
		p := "/contacts/" + url.PathEscape(id)
		var cr struct{ Contact api.Contact }
		if st := get(p, &cr); st != http.StatusOK || cr.Contact.ID != id {
			t.Errorf("GET %s: %d, id %q; want 200 and %q", p, st, cr.Contact.ID, id)
		}
		var tr api.TasksResponse
		var nr api.NotesResponse
		var er api.EventsResponse
		if get(p+"/tasks", &tr) != http.StatusOK || len(tr.Tasks) != len(ct.Tasks) ||
			get(p+"/notes", &nr) != http.StatusOK || len(nr.Notes) != len(ct.Notes) ||
			get(p+"/appointments", &er) != http.StatusOK || len(er.Events) != len(ct.Events) {
			t.Errorf("children of %q: %d tasks, %d notes, %d events; truth %d, %d, %d",
				id, len(tr.Tasks), len(nr.Notes), len(er.Events), len(ct.Tasks), len(ct.Notes), len(ct.Events))
		}
		if twice := "/contacts/" + url.PathEscape(url.PathEscape(id)); get(twice, nil) != http.StatusNotFound {
			t.Errorf("GET %s (escaped twice) found a contact", twice)
		}
	}
	if len(seen) != len(OddIDPieces) || kids == 0 {
		t.Errorf("odd pieces in ids: %v, want all of %q; %d children", seen, OddIDPieces, kids)
	}
	lp := "/locations/" + url.PathEscape(oddLocation)
	var lr api.LocationResponse
	if st := get(lp, &lr); st != http.StatusOK || lr.Location == nil || lr.Location.ID != oddLocation {
		t.Errorf("GET %s: %d %+v", lp, st, lr.Location)
	}
	var cf api.CustomFieldsResponse
	if st := get(lp+"/customFields?model=contact", &cf); st != http.StatusOK || len(cf.CustomFields) == 0 {
		t.Errorf("GET %s/customFields: %d, %d fields", lp, st, len(cf.CustomFields))
	}
	if st := get("/locations/"+url.PathEscape(url.PathEscape(oddLocation)), nil); st == http.StatusOK {
		t.Errorf("the location escaped twice was found")
	}
}
