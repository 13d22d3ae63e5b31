package sim

import (
	"github.com/contacts-etl/contacts-etl/extract/api"
	"net/http/httptest"
	"strings"
	"testing"
)

func BenchmarkNew(b *testing.B) {
	for range b.N {
		New(Config{Seed: 1, Contacts: 100_000})
	}
}

func BenchmarkSearchPage500(b *testing.B) {
	s := New(Config{Seed: 1, Contacts: 100_000, StaticTokens: map[string]StaticToken{"pit-x": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	b.ResetTimer()
	for i := range b.N {
		body := `{"locationId":"loc-0001","pageLimit":500,"page":` + string(rune('1'+i%9)) + `}`
		r := httptest.NewRequest("POST", "/contacts/search", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer pit-x")
		r.Header.Set("Version", api.VersionContacts)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
