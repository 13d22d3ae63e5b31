package sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a started simulator with a location token.
type env struct {
	t     *testing.T
	s     *Server
	base  string
	token string
	loc   string
}

func start(t *testing.T, cfg Config) *env {
	t.Helper()
	s := New(cfg)
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{t: t, s: s, base: base, loc: s.Locations()[0]}
	e.token = e.grant(s.AuthorizeCode(e.loc, api.ScopeContactsRO)).AccessToken
	return e
}

// grant redeems an authorization code.
func (e *env) grant(code string) api.TokenResponse {
	e.t.Helper()
	status, body := e.form("/oauth/token", url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"grant_type": {"authorization_code"}, "code": {code}, "user_type": {"Location"}})
	if status != 200 {
		e.t.Fatalf("grant: %d %s", status, body)
	}
	var tr api.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		e.t.Fatal(err)
	}
	return tr
}

func (e *env) form(path string, v url.Values) (int, []byte) {
	e.t.Helper()
	resp, err := http.PostForm(e.base+path, v)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call sends an API request with the env's token (or tok when given).
func (e *env) call(method, path string, body any, tok ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(body))
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	token := e.token
	if len(tok) > 0 {
		token = tok[0]
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Version", api.VersionContacts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func mustJSON(v any) []byte {
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (e *env) search(req api.SearchRequest) (int, api.SearchResponse, []byte) {
	e.t.Helper()
	resp, b := e.call("POST", "/contacts/search", req)
	var sr api.SearchResponse
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &sr); err != nil {
			e.t.Fatalf("decode search: %v", err)
		}
	}
	return resp.StatusCode, sr, b
}

// errMsg decodes an error envelope.
func errMsg(t *testing.T, b []byte) api.ErrorBody {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("decode error body %q: %v", b, err)
	}
	if eb.TraceID == "" {
		t.Errorf("error body without traceId: %s", b)
	}
	return eb
}

func liveIDs(tr []ContactTruth) []string {
	var ids []string
	for _, c := range tr {
		if !c.Deleted {
			ids = append(ids, c.Contact.ID)
		}
	}
	return ids
}

type hit struct {
	ID          string `json:"id"`
	DateUpdated string `json:"dateUpdated"`
	SearchAfter []any  `json:"searchAfter"`
}

// pageAll pages through a location with cursors and returns the hits in order.
func (e *env) pageAll(loc string, limit int, filters []api.Filter, desc bool) []hit {
	e.t.Helper()
	var out []hit
	var after []any
	dir := "asc"
	if desc {
		dir = "desc"
	}
	for pages := 0; ; pages++ {
		if pages > 100000 {
			e.t.Fatal("paging does not end")
		}
		status, sr, b := e.search(api.SearchRequest{LocationID: loc, PageLimit: limit, SearchAfter: after, Filters: filters,
			Sort: []api.Sort{{Field: "dateUpdated", Direction: dir}}})
		if status != 200 {
			e.t.Fatalf("search: %d %s", status, b)
		}
		for _, raw := range sr.Contacts {
			var h hit
			if err := json.Unmarshal(raw, &h); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, h)
		}
		if len(sr.Contacts) < limit {
			return out
		}
		after = out[len(out)-1].SearchAfter
	}
}

func TestSearchCursorCoversEveryContactOnce(t *testing.T) {
	const limit = 7
	for _, n := range []int{0, 1, limit, limit + 1, 3*limit - 1, 250} {
		e := start(t, Config{Seed: int64(n), Contacts: n})
		hits := e.pageAll(e.loc, limit, nil, false)
		var got []string
		for i, h := range hits {
			got = append(got, h.ID)
			if i > 0 {
				p := hits[i-1]
				if p.DateUpdated > h.DateUpdated || (p.DateUpdated == h.DateUpdated && p.ID >= h.ID) {
					t.Errorf("n=%d: order broken at %d: %v then %v", n, i, p, h)
				}
			}
			ms, _ := time.Parse(time.RFC3339Nano, h.DateUpdated)
			if len(h.SearchAfter) != 2 || h.SearchAfter[0] != float64(ms.UnixMilli()) || h.SearchAfter[1] != h.ID {
				t.Errorf("searchAfter %v for %v", h.SearchAfter, h)
			}
		}
		want := liveIDs(e.s.Truth(e.loc))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: got %d ids, want %d (or different)", n, len(got), len(want))
		}
		desc := e.pageAll(e.loc, limit, nil, true)
		if len(desc) != len(hits) {
			t.Fatalf("desc: %d hits, asc %d", len(desc), len(hits))
		}
		for i := range desc {
			if desc[i].ID != hits[len(hits)-1-i].ID {
				t.Fatalf("desc order differs at %d", i)
			}
		}
	}
}

func TestSearchTiesBrokenByID(t *testing.T) {
	clk := newClock()
	e := start(t, Config{Seed: 1, Contacts: 30, Now: clk.Now})
	tr := e.s.Truth(e.loc)
	for _, c := range tr[:10] { // ten contacts updated in the same millisecond
		e.s.UpdateContact(c.Contact.ID, func(c *api.Contact) { c.City = "Tie" })
	}
	hits := e.pageAll(e.loc, 3, nil, false)
	if len(hits) != 30 {
		t.Fatalf("%d hits", len(hits))
	}
	tail := hits[20:]
	for i, h := range tail {
		if h.ID != tr[i].Contact.ID {
			t.Fatalf("tie %d: %s, want %s", i, h.ID, tr[i].Contact.ID)
		}
	}
}

func TestSearchFiltersAndTotal(t *testing.T) {
	e := start(t, Config{Seed: 3, Contacts: 400, Locations: 2})
	tr := e.s.Truth(e.loc)
	gte, lt := "2023-01-01T00:00:00.000Z", "2024-03-01T00:00:00Z"
	want := 0
	for _, c := range tr {
		if c.Contact.DateUpdated >= gte && c.Contact.DateUpdated < "2024-03-01T00:00:00.000Z" {
			want++
		}
	}
	if want == 0 || want == len(tr) {
		t.Fatalf("filter selects %d of %d: pick other bounds", want, len(tr))
	}
	f := []api.Filter{{Field: "dateUpdated", Operator: "range", Value: api.Range{GTE: gte, LT: lt}}}
	status, sr, b := e.search(api.SearchRequest{LocationID: e.loc, PageLimit: 10, Filters: f})
	if status != 200 || sr.Total != want || len(sr.Contacts) != 10 {
		t.Fatalf("status %d total %d (want %d) len %d: %.200s", status, sr.Total, want, len(sr.Contacts), b)
	}
	hits := e.pageAll(e.loc, 50, f, false)
	if len(hits) != want {
		t.Fatalf("paged %d, want %d", len(hits), want)
	}
	for _, h := range hits {
		if h.DateUpdated < gte || h.DateUpdated >= "2024-03-01" {
			t.Fatalf("out of range: %v", h)
		}
	}
	// dateAdded filter with dateUpdated sort (linear path), lte inclusive.
	f2 := []api.Filter{{Field: "dateAdded", Operator: "range", Value: map[string]any{"lte": tr[0].Contact.DateAdded}}}
	want2 := 0
	for _, c := range tr {
		if c.Contact.DateAdded <= tr[0].Contact.DateAdded {
			want2++
		}
	}
	if got := len(e.pageAll(e.loc, 50, f2, false)); got != want2 {
		t.Errorf("dateAdded filter: %d, want %d", got, want2)
	}
}

func TestSearchPageMode(t *testing.T) {
	e := start(t, Config{Seed: 4, Contacts: 95})
	var ids []string
	for page := 1; ; page++ {
		status, sr, b := e.search(api.SearchRequest{LocationID: e.loc, PageLimit: 20, Page: page})
		if status != 200 {
			t.Fatalf("page %d: %d %s", page, status, b)
		}
		for _, raw := range sr.Contacts {
			var h hit
			json.Unmarshal(raw, &h)
			ids = append(ids, h.ID)
		}
		if len(sr.Contacts) < 20 {
			break
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, liveIDs(e.s.Truth(e.loc))) {
		t.Errorf("page mode: %d ids", len(ids))
	}
}

func TestSearch422(t *testing.T) {
	e := start(t, Config{Seed: 5, Contacts: 10})
	for name, body := range map[string]any{
		"no location":       map[string]any{"pageLimit": 10},
		"no pageLimit":      map[string]any{"locationId": e.loc},
		"pageLimit 501":     map[string]any{"locationId": e.loc, "pageLimit": 501},
		"page+searchAfter":  map[string]any{"locationId": e.loc, "pageLimit": 10, "page": 2, "searchAfter": []any{1, "x"}},
		"window":            map[string]any{"locationId": e.loc, "pageLimit": 500, "page": 21},
		"bad searchAfter":   map[string]any{"locationId": e.loc, "pageLimit": 10, "searchAfter": []any{"x"}},
		"bad filter":        map[string]any{"locationId": e.loc, "pageLimit": 10, "filters": []any{map[string]any{"field": "email", "operator": "eq", "value": "x"}}},
		"not json":          []byte("{"),
		"bad sort":          map[string]any{"locationId": e.loc, "pageLimit": 10, "sort": []any{map[string]any{"field": "email", "direction": "asc"}}},
		"bad range bound":   map[string]any{"locationId": e.loc, "pageLimit": 10, "filters": []any{map[string]any{"field": "dateUpdated", "operator": "range", "value": map[string]any{"gte": "yesterday"}}}},
		"pageLimit 0":       map[string]any{"locationId": e.loc, "pageLimit": 0},
		"pageLimit as text": map[string]any{"locationId": e.loc, "pageLimit": "10"},
	} {
		resp, b := e.call("POST", "/contacts/search", body)
		if resp.StatusCode != 422 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
			continue
		}
		eb := errMsg(t, b)
		var arr []string
		if json.Unmarshal(eb.Message, &arr) != nil || len(arr) == 0 {
			t.Errorf("%s: message is not an array: %s", name, b)
		}
	}
	// The last page of the page window is fine.
	if resp, b := e.call("POST", "/contacts/search", map[string]any{"locationId": e.loc, "pageLimit": 500, "page": 20}); resp.StatusCode != 200 {
		t.Errorf("page 20 x 500: %d %s", resp.StatusCode, b)
	}
}

func TestShapesMatchTruth(t *testing.T) {
	e := start(t, Config{Seed: 6, Contacts: 300})
	tr := e.s.Truth(e.loc)
	var naive, offset, emptyKids, bigKids, noEmail, dob, cfKinds int
	kinds := map[byte]bool{}
	for _, want := range tr {
		id := want.Contact.ID
		resp, b := e.call("GET", "/contacts/"+id, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET contact: %d %s", resp.StatusCode, b)
		}
		var cr struct{ Contact api.Contact }
		if err := json.Unmarshal(b, &cr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustJSON(cr.Contact), mustJSON(want.Contact)) {
			t.Fatalf("contact %s differs:\n%s\n%s", id, mustJSON(cr.Contact), mustJSON(want.Contact))
		}
		var tasks struct{ Tasks []api.Task }
		var notes struct{ Notes []api.Note }
		var events struct{ Events []api.Event }
		for path, v := range map[string]any{"/tasks": &tasks, "/notes": &notes, "/appointments": &events} {
			resp, b := e.call("GET", "/contacts/"+id+path, nil)
			if resp.StatusCode != 200 || json.Unmarshal(b, v) != nil {
				t.Fatalf("GET %s: %d %.200s", path, resp.StatusCode, b)
			}
		}
		if !sameList(tasks.Tasks, want.Tasks) || !sameList(notes.Notes, want.Notes) || !sameList(events.Events, want.Events) {
			t.Fatalf("children of %s differ", id)
		}
		if len(notes.Notes) > 0 {
			n := notes.Notes[0]
			resp, b := e.call("GET", "/contacts/"+id+"/notes/"+n.ID, nil)
			var nr struct{ Note api.Note }
			if resp.StatusCode != 200 || json.Unmarshal(b, &nr) != nil || nr.Note != n {
				t.Fatalf("GET note: %d %s", resp.StatusCode, b)
			}
		}
		for _, ev := range events.Events {
			if strings.Contains(ev.StartTime, "T") {
				offset++
			} else {
				naive++
			}
		}
		k := len(want.Tasks) + len(want.Notes) + len(want.Events)
		if k == 0 {
			emptyKids++
		}
		if k >= 30 {
			bigKids++
		}
		if want.Contact.Email == "" {
			noEmail++
		}
		if want.Contact.DateOfBirth != "" {
			dob++
		}
		for _, cf := range want.Contact.CustomFields {
			kinds[cf.Value[0]] = true
		}
	}
	cfKinds = len(kinds)
	if naive == 0 || offset == 0 || emptyKids == 0 || bigKids == 0 || noEmail == 0 || dob == 0 || cfKinds < 4 {
		t.Errorf("variety: naive %d offset %d empty %d big %d noEmail %d dob %d cfKinds %d", naive, offset, emptyKids, bigKids, noEmail, dob, cfKinds)
	}
	// Search form adds contactName and businessName.
	_, sr, _ := e.search(api.SearchRequest{LocationID: e.loc, PageLimit: 500})
	withName := 0
	for _, raw := range sr.Contacts {
		var c api.Contact
		json.Unmarshal(raw, &c)
		if c.ContactName != "" {
			withName++
		}
		if c.CompanyName != c.BusinessName {
			t.Fatalf("businessName %q vs companyName %q", c.BusinessName, c.CompanyName)
		}
	}
	if withName == 0 {
		t.Error("no contactName in search results")
	}
	// Unknown contact and note.
	if resp, b := e.call("GET", "/contacts/nope", nil); resp.StatusCode != 404 || errMsg(t, b).Text() != MsgContactNotFound {
		t.Errorf("unknown contact: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.call("GET", "/contacts/"+tr[0].Contact.ID+"/notes/nope", nil); resp.StatusCode != 404 {
		t.Errorf("unknown note: %d %s", resp.StatusCode, b)
	}
}

// TestDeterministic: one seed, one world. How fast a world is generated is
// BenchmarkNew's to measure (a wall-time assertion fails on a loaded machine).
func TestDeterministic(t *testing.T) {
	a, b := New(Config{Seed: 9, Contacts: 200, Locations: 3}), New(Config{Seed: 9, Contacts: 200, Locations: 3})
	for _, loc := range a.Locations() {
		if !bytes.Equal(mustJSON(a.Truth(loc)), mustJSON(b.Truth(loc))) {
			t.Fatalf("location %s differs between two servers of one seed", loc)
		}
	}
	if c := New(Config{Seed: 10, Contacts: 200, Locations: 3}); bytes.Equal(mustJSON(a.Truth("loc-0001")), mustJSON(c.Truth("loc-0001"))) {
		t.Error("seed does not matter")
	}
	if testing.Short() {
		return
	}
	s := New(Config{Seed: 1, Contacts: 100_000, Locations: 4})
	ids := map[string]bool{}
	for _, l := range s.Locations() {
		for _, c := range s.byID {
			if c.c.LocationID == l {
				ids[c.c.ID] = true
			}
		}
	}
	if len(ids) != 100_000 {
		t.Errorf("%d distinct ids", len(ids))
	}
}

func TestDeprecatedList(t *testing.T) {
	e := start(t, Config{Seed: 11, Contacts: 57})
	var ids []string
	q := url.Values{"locationId": {e.loc}, "limit": {"10"}}
	for pages := 0; ; pages++ {
		resp, b := e.call("GET", "/contacts/?"+q.Encode(), nil)
		var lr api.ListResponse
		if resp.StatusCode != 200 || json.Unmarshal(b, &lr) != nil {
			t.Fatalf("list: %d %s", resp.StatusCode, b)
		}
		if lr.Meta.Total != 57 || lr.Meta.CurrentPage != pages+1 {
			t.Fatalf("meta %+v", lr.Meta)
		}
		for _, raw := range lr.Contacts {
			var h hit
			json.Unmarshal(raw, &h)
			ids = append(ids, h.ID)
		}
		if lr.Meta.NextPage == nil {
			if lr.Meta.NextPageURL != "" || len(ids) != 57 {
				t.Fatalf("end: %+v after %d", lr.Meta, len(ids))
			}
			break
		}
		if !strings.Contains(lr.Meta.NextPageURL, "startAfterId="+lr.Meta.StartAfterID) {
			t.Errorf("nextPageUrl %q", lr.Meta.NextPageURL)
		}
		q.Set("startAfter", jsonInt(lr.Meta.StartAfter))
		q.Set("startAfterId", lr.Meta.StartAfterID)
	}
	got := slices.Clone(ids)
	slices.Sort(got)
	if !slices.Equal(got, liveIDs(e.s.Truth(e.loc))) {
		t.Error("list does not cover every contact once")
	}
	if resp, _ := e.call("GET", "/contacts/?locationId="+e.loc+"&limit=101", nil); resp.StatusCode != 422 {
		t.Errorf("limit 101: %d", resp.StatusCode)
	}
	resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil)
	var lr api.ListResponse
	json.Unmarshal(b, &lr)
	if resp.StatusCode != 200 || len(lr.Contacts) != DefaultListLim {
		t.Errorf("default limit: %d, %d contacts", resp.StatusCode, len(lr.Contacts))
	}
}

// sameList compares two lists by their JSON, nil and empty alike.
func sameList[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || bytes.Equal(mustJSON(a), mustJSON(b)))
}

func rawEq(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

func jsonInt(n int64) string { return string(mustJSON(n)) }

func TestPagingBugs(t *testing.T) {
	e := start(t, Config{Seed: 12, Contacts: 50, Bad: BadData{SearchStuckAtPage: 3, ListRepeatAtPage: 2}})
	var after []any
	var lastPage []json.RawMessage
	for page := 1; page <= 4; page++ {
		_, sr, _ := e.search(api.SearchRequest{LocationID: e.loc, PageLimit: 10, SearchAfter: after})
		if page == 4 && !slices.EqualFunc(sr.Contacts, lastPage, rawEq) {
			t.Fatal("page 4 (asked with page 3's cursor) is not page 3 again")
		}
		if page == 3 && slices.EqualFunc(sr.Contacts, lastPage, rawEq) != true {
			t.Fatal("page 3 does not repeat page 2")
		}
		lastPage = sr.Contacts
		var h hit
		json.Unmarshal(sr.Contacts[len(sr.Contacts)-1], &h)
		after = h.SearchAfter
	}
	q := url.Values{"locationId": {e.loc}, "limit": {"10"}}
	_, b := e.call("GET", "/contacts/?"+q.Encode(), nil)
	var lr api.ListResponse
	json.Unmarshal(b, &lr)
	q.Set("startAfter", jsonInt(lr.Meta.StartAfter))
	q.Set("startAfterId", lr.Meta.StartAfterID)
	_, b = e.call("GET", "/contacts/?"+q.Encode(), nil)
	var lr2 api.ListResponse
	json.Unmarshal(b, &lr2)
	if lr2.Meta.StartAfter != lr.Meta.StartAfter || lr2.Meta.StartAfterID != lr.Meta.StartAfterID {
		t.Errorf("list cursor advanced at page 2: %+v -> %+v", lr.Meta, lr2.Meta)
	}
}

func TestHTTPTestHandler(t *testing.T) {
	s := New(Config{Seed: 1, Contacts: 3, StaticTokens: map[string]StaticToken{"pit-x": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	ts := httptest.NewServer(s)
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/contacts/search", strings.NewReader(`{"locationId":"loc-0001","pageLimit":5}`))
	req.Header.Set("Authorization", "Bearer pit-x")
	req.Header.Set("Version", api.VersionContacts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var sr api.SearchResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &sr) != nil || sr.Total != 3 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if st := s.Stats(); st.ByKind["search"] != 1 || st.ByLocation["loc-0001"] != 1 || st.ByStatus[200] != 1 {
		t.Errorf("stats %+v", st)
	}
	s.ResetStats()
	if st := s.Stats(); st.Requests != 0 {
		t.Errorf("after reset %+v", st)
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"--contacts=100000", "--locations=3", "--seed=7", "--access-ttl=5s", "--rate-max=100",
		"--rate-interval=10s", "--rate-daily=200000", "--fault-5xx=0.01", "--fault-reset=0.02", "--fault-truncate=0.03",
		"--fault-slow=0.04", "--fault-429=0.05", "--retry-after", "--bad-huge-note", "--bad-search-stuck-page=4"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Contacts: 100000, Locations: 3, Seed: 7, AccessTTL: 5 * time.Second, ClientID: DefaultClientID, RetryAfter: true,
		RateLimit: RateLimit{Max: 100, Interval: 10 * time.Second, Daily: 200000},
		Faults: Faults{Rate5xx: 0.01, RateReset: 0.02, RateTruncate: 0.03, RateSlow: 0.04, Burst429: 0.05, SlowDelay: DefaultSlowDelay,
			BurstLen: DefaultBurstLen, MaxPerRequest: DefaultMaxFaultsKey},
		Bad: BadData{HugeNote: true, SearchStuckAtPage: 4}}
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}
