package jsoncmp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// inputs are the bytes every decoder reads: answers of the simulator
// (seed 21, 1000 contacts, in process), as extract's benchmarks use.
type inputs struct {
	page     []byte   // POST /contacts/search, pageLimit 500
	contacts [][]byte // the contacts of page
	children []child  // tasks, notes, appointments of the first 50 contacts
}

type child struct {
	res  string
	body []byte
}

const token = "pit-jsoncmp"

var (
	inputsOnce sync.Once
	theInputs  inputs
	inputsErr  string
)

// simInputs returns the inputs, read from the simulator once per process.
func simInputs(tb testing.TB) inputs {
	tb.Helper()
	inputsOnce.Do(func() { theInputs, inputsErr = readInputs() })
	if inputsErr != "" {
		tb.Fatal(inputsErr)
	}
	return theInputs
}

func readInputs() (inputs, string) {
	srv := sim.New(sim.Config{Seed: 21, Contacts: 1000,
		StaticTokens: map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	get := func(method, path, body string) ([]byte, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Version", api.VersionContacts)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			return nil, method + " " + path + ": " + w.Body.String()
		}
		return w.Body.Bytes(), ""
	}
	var in inputs
	var bad string
	if in.page, bad = get(http.MethodPost, "/contacts/search", `{"locationId":"loc-0001","pageLimit":500}`); bad != "" {
		return in, bad
	}
	var resp api.SearchResponse
	if err := json.Unmarshal(in.page, &resp); err != nil || len(resp.Contacts) != 500 {
		return in, "search page: " + string(in.page[:min(len(in.page), 200)])
	}
	for _, raw := range resp.Contacts {
		in.contacts = append(in.contacts, raw)
	}
	for _, raw := range resp.Contacts[:50] {
		var k pageKey
		if err := json.Unmarshal(raw, &k); err != nil {
			return in, err.Error()
		}
		for _, res := range []string{api.ResourceTasks, api.ResourceNotes, api.ResourceAppointments} {
			body, bad := get(http.MethodGet, "/contacts/"+k.ID+"/"+res, "")
			if bad != "" {
				return in, bad
			}
			in.children = append(in.children, child{res, body})
		}
	}
	return in, ""
}
