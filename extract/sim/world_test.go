package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// outcome of one raw request: a status, or "error" when the transport or
// the body read failed.
type outcome struct {
	status int
	err    bool
	body   []byte
	html   bool
}

func rawDo(t *testing.T, c *http.Client, base, token, method, path, body string) outcome {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Version", api.VersionContacts)
	resp, err := c.Do(req)
	if err != nil {
		return outcome{err: true}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{err: true}
	}
	return outcome{status: resp.StatusCode, body: b, html: strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")}
}

func TestFaults(t *testing.T) {
	cfg := Config{Seed: 21, Contacts: 400, Faults: Faults{Rate5xx: 0.1, RateReset: 0.05, RateTruncate: 0.05, RateSlow: 0.05, SlowDelay: time.Millisecond}}
	e := start(t, cfg)
	clean := start(t, Config{Seed: 21, Contacts: 400})
	noKeep := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	type req struct{ method, path, body string }
	var reqs []req
	for i, c := range e.s.Truth(e.loc) {
		reqs = append(reqs, req{"GET", "/contacts/" + c.Contact.ID + "/notes", ""}, req{"GET", "/contacts/" + c.Contact.ID, ""})
		if i < 100 {
			reqs = append(reqs, req{"POST", "/contacts/search", fmt.Sprintf(`{"locationId":%q,"pageLimit":%d}`, e.loc, 1+i)})
		}
	}
	var n5xx, nErr, nHTML int
	var first []outcome
	for _, r := range reqs {
		o := rawDo(t, noKeep, e.base, e.token, r.method, r.path, r.body)
		first = append(first, o)
		switch {
		case o.err:
			nErr++
		case o.status >= 500:
			n5xx++
			if o.html {
				nHTML++
			}
		case o.status != 200:
			t.Fatalf("%s %s: unexpected %d %s", r.method, r.path, o.status, o.body)
		}
	}
	n := float64(len(reqs))
	st := e.s.Stats()
	t.Logf("%d requests: %d 5xx (%d html), %d broken; stats %v", len(reqs), n5xx, nHTML, nErr, st.Faults)
	within := func(name string, got int, want float64) {
		if float64(got) < want*0.6 || float64(got) > want*1.4 {
			t.Errorf("%s: %d, want about %.0f", name, got, want)
		}
	}
	within("5xx", n5xx, 0.1*n)
	within("reset+truncate", nErr, 0.9*0.05*n+0.9*0.95*0.05*n)
	within("slow", int(st.Faults[FaultSlow]), 0.05*n)
	if int(st.Faults[Fault5xx]) != n5xx || int(st.Faults[FaultReset]+st.Faults[FaultTruncate]) != nErr || nHTML == 0 || nHTML == n5xx {
		t.Errorf("stats %v disagree with what the client saw", st.Faults)
	}
	// Every request gets through within MaxPerRequest+1 attempts, with the
	// bytes a fault-free server sends.
	for i, r := range reqs {
		o := first[i]
		for a := 0; o.err || o.status != 200; a++ {
			if a == DefaultMaxFaultsKey {
				t.Fatalf("%s %s still failing after %d retries", r.method, r.path, a)
			}
			o = rawDo(t, noKeep, e.base, e.token, r.method, r.path, r.body)
		}
		want := rawDo(t, noKeep, clean.base, clean.token, r.method, r.path, r.body)
		if !bytes.Equal(o.body, want.body) {
			t.Fatalf("%s %s: body after faults differs from a clean server's", r.method, r.path)
		}
	}
	// Same seed, same request sequence → same faults.
	again := start(t, cfg)
	for i, r := range reqs[:300] {
		o := rawDo(t, noKeep, again.base, again.token, r.method, r.path, r.body)
		if o.err != first[i].err || o.status != first[i].status {
			t.Fatalf("request %d: not reproducible: %+v vs %+v", i, o.status, first[i].status)
		}
	}
}

func TestBurst429(t *testing.T) {
	e := start(t, Config{Seed: 5, Contacts: 50, RetryAfter: true, Faults: Faults{Burst429: 0.02, BurstLen: 4}})
	ids := liveIDs(e.s.Truth(e.loc))
	n429, runs, prev := 0, 0, false
	for i := range 2000 {
		resp, _ := e.call("GET", "/contacts/"+ids[i%len(ids)]+"/tasks?i="+fmt.Sprint(i), nil)
		is := resp.StatusCode == 429
		if is {
			n429++
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-RateLimit-Remaining") != "0" {
				t.Fatalf("burst 429 headers %v", resp.Header)
			}
			if !prev {
				runs++
			}
		}
		prev = is
	}
	t.Logf("%d 429s in %d runs", n429, runs)
	if runs < 15 || runs > 60 || n429 < 4*runs-3 {
		t.Errorf("%d 429s in %d runs; want ~40 runs of 4", n429, runs)
	}
}

func TestTokenFaultsOptIn(t *testing.T) {
	e := start(t, Config{Seed: 1, Contacts: 1, Faults: Faults{Rate5xx: 1}})
	// start() got a token despite Rate5xx 1: /oauth/token is exempt by default.
	if resp, _ := e.call("GET", "/contacts/?locationId="+e.loc, nil); resp.StatusCode < 500 {
		t.Errorf("API not faulted: %d", resp.StatusCode)
	}
	s := New(Config{Seed: 1, Faults: Faults{Rate5xx: 1, Token: true}})
	base, _ := s.Start("127.0.0.1:0")
	defer s.Close()
	resp, err := http.PostForm(base+"/oauth/token", map[string][]string{"grant_type": {"refresh_token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Errorf("token not faulted: %d", resp.StatusCode)
	}
}

func TestMutations(t *testing.T) {
	clk := newClock()
	e := start(t, Config{Seed: 31, Contacts: 60, Locations: 2, Now: clk.Now})
	tr := e.s.Truth(e.loc)
	a, b, c, d := tr[0].Contact, tr[1].Contact, tr[2].Contact, tr[3].Contact
	clk.Add(time.Hour)
	now := clk.Now().Format(isoMs)
	since := []api.Filter{{Field: "dateUpdated", Operator: "range", Value: api.Range{GTE: now}}}

	if err := e.s.UpdateContact(a.ID, func(c *api.Contact) { c.City = "Neuchâtel" }); err != nil {
		t.Fatal(err)
	}
	noteID := e.s.AddNote(b.ID)
	taskID := e.s.AddTask(c.ID)
	if err := e.s.DeleteContact(d.ID); err != nil {
		t.Fatal(err)
	}
	newID := e.s.AddContact(e.loc)
	if noteID == "" || taskID == "" || newID == "" {
		t.Fatal("mutation returned no id")
	}
	if err := e.s.UpdateContact("nope", func(*api.Contact) {}); err != ErrNotFound {
		t.Errorf("update unknown: %v", err)
	}

	var got struct{ Contact api.Contact }
	_, body := e.call("GET", "/contacts/"+a.ID, nil)
	json.Unmarshal(body, &got)
	if got.Contact.City != "Neuchâtel" || got.Contact.DateUpdated != now {
		t.Errorf("updated contact: %+v", got.Contact)
	}
	var changed []string
	for _, h := range e.pageAll(e.loc, 10, since, false) {
		changed = append(changed, h.ID)
	}
	slices.Sort(changed)
	want := []string{a.ID, c.ID, newID}
	slices.Sort(want)
	if !slices.Equal(changed, want) {
		t.Errorf("changed since now: %v, want %v (note on b must not bump it)", changed, want)
	}
	var notes struct{ Notes []api.Note }
	_, body = e.call("GET", "/contacts/"+b.ID+"/notes", nil)
	json.Unmarshal(body, &notes)
	if !slices.ContainsFunc(notes.Notes, func(n api.Note) bool { return n.ID == noteID }) {
		t.Error("added note not served")
	}
	if resp, _ := e.call("GET", "/contacts/"+d.ID, nil); resp.StatusCode != 404 {
		t.Errorf("deleted contact: %d", resp.StatusCode)
	}
	if resp, _ := e.call("GET", "/contacts/"+d.ID+"/notes", nil); resp.StatusCode != 404 {
		t.Errorf("notes of deleted contact: %d", resp.StatusCode)
	}
	all := e.pageAll(e.loc, 100, nil, false)
	if len(all) != 30 || slices.ContainsFunc(all, func(h hit) bool { return h.ID == d.ID }) {
		t.Errorf("search after delete+add: %d hits", len(all))
	}
	tr2 := e.s.Truth(e.loc)
	byID := map[string]ContactTruth{}
	for _, x := range tr2 {
		byID[x.Contact.ID] = x
	}
	if !byID[d.ID].Deleted || byID[b.ID].Contact.DateUpdated != b.DateUpdated || len(byID[b.ID].Notes) != len(tr[1].Notes)+1 ||
		len(byID[c.ID].Tasks) != len(tr[2].Tasks)+1 || byID[a.ID].Contact.City != "Neuchâtel" || byID[newID].Contact.DateAdded != now {
		t.Error("Truth does not reflect the mutations")
	}
	if err := e.s.UpdateTask(c.ID, taskID, func(t *api.Task) { t.Completed = true }); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteNote(b.ID, noteID); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteTask(c.ID, taskID); err != nil {
		t.Fatal(err)
	}
	if e.s.AddEvent(a.ID) == "" {
		t.Error("AddEvent")
	}

	// Mutate: deterministic, and reflected in Truth.
	s1, s2 := New(Config{Seed: 3, Contacts: 1000, Now: clk.Now}), New(Config{Seed: 3, Contacts: 1000, Now: clk.Now})
	m1, m2 := s1.Mutate(0.2, 7), s2.Mutate(0.2, 7)
	if fmt.Sprint(m1) != fmt.Sprint(m2) {
		t.Error("Mutate is not deterministic")
	}
	if n := len(m1.Updated) + len(m1.NotesAdded) + len(m1.Deleted); n != 200 || len(m1.Added) != 20 || len(m1.Deleted) == 0 || len(m1.NotesAdded) == 0 {
		t.Errorf("summary: %d updated %d notes %d deleted %d added", len(m1.Updated), len(m1.NotesAdded), len(m1.Deleted), len(m1.Added))
	}
	truth := map[string]ContactTruth{}
	for _, x := range s1.Truth("loc-0001") {
		truth[x.Contact.ID] = x
	}
	for _, id := range m1.Updated {
		if truth[id].Contact.DateUpdated != now {
			t.Fatalf("updated %s not bumped", id)
		}
	}
	for _, id := range m1.Deleted {
		if !truth[id].Deleted {
			t.Fatalf("deleted %s not deleted", id)
		}
	}
	for _, id := range m1.NotesAdded {
		if truth[id].Contact.DateUpdated == now {
			t.Fatalf("note-only %s bumped", id)
		}
	}
	if len(truth) != 1020 {
		t.Errorf("truth has %d contacts", len(truth))
	}
}

// TestConcurrentReadsAndMutations is mostly for -race.
func TestConcurrentReadsAndMutations(t *testing.T) {
	e := start(t, Config{Seed: 41, Contacts: 300, RateLimit: RateLimit{Max: 1 << 30}})
	ids := liveIDs(e.s.Truth(e.loc))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				id := ids[(w*31+i)%len(ids)]
				rawDo(t, http.DefaultClient, e.base, e.token, "GET", "/contacts/"+id+"/notes", "")
				rawDo(t, http.DefaultClient, e.base, e.token, "POST", "/contacts/search", `{"locationId":"loc-0001","pageLimit":50}`)
			}
		}()
	}
	for i := range 30 {
		e.s.UpdateContact(ids[i], func(c *api.Contact) { c.Tags = append(c.Tags, "x") })
		e.s.AddNote(ids[i+30])
	}
	e.s.Mutate(0.1, 1)
	wg.Wait()
	e.s.ExpectedRejects()
}

func TestBadData(t *testing.T) {
	e := start(t, Config{Seed: 51, Contacts: 200, Bad: BadData{WrongTypes: 2, InvalidUTF8: 2, HugeNote: true, MalformedChildList: 2, MissingID: 3}})
	rej := e.s.ExpectedRejects()
	kinds := map[string]int{}
	for _, r := range rej {
		kinds[r.Resource+"/"+r.Kind]++
	}
	want := map[string]int{"contacts/wrong_type": 1, "tasks/wrong_type": 1, "contacts/invalid_utf8": 1, "notes/invalid_utf8": 1,
		"contacts/missing_id": 1, "notes/missing_id": 1, "appointments/missing_id": 1, "notes/malformed_list": 1, "tasks/malformed_list": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("rejects %v\nwant %v", kinds, want)
	}
	get := func(path string) []byte {
		resp, b := e.call("GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return b
	}
	for _, r := range rej {
		switch r.Resource + "/" + r.Kind {
		case "contacts/wrong_type":
			b := get("/contacts/" + r.ID)
			var c struct{ Contact api.Contact }
			if !bytes.Contains(b, []byte(`"firstName":123`)) || !bytes.Contains(b, []byte(`"tags":"x"`)) || json.Unmarshal(b, &c) == nil {
				t.Errorf("wrong types not served: %s", b)
			}
		case "tasks/wrong_type":
			b := get("/contacts/" + r.ContactID + "/tasks")
			var ts struct{ Tasks []api.Task }
			if !bytes.Contains(b, []byte(`"completed":"yes"`)) || json.Unmarshal(b, &ts) == nil {
				t.Errorf("wrong task type not served: %s", b)
			}
		case "contacts/invalid_utf8":
			if b := get("/contacts/" + r.ID); utf8.Valid(b) || !bytes.Contains(b, []byte("Jos\xe9")) {
				t.Errorf("invalid UTF-8 contact: %q", b)
			}
		case "notes/invalid_utf8":
			if b := get("/contacts/" + r.ContactID + "/notes"); utf8.Valid(b) {
				t.Errorf("invalid UTF-8 note: %q", b)
			}
			if b := get("/contacts/" + r.ContactID + "/notes/" + r.ID); utf8.Valid(b) {
				t.Errorf("invalid UTF-8 single note: %q", b)
			}
		case "contacts/missing_id":
			var m map[string]any
			if json.Unmarshal(get("/contacts/"+r.ID), &m) != nil || m["contact"].(map[string]any)["id"] != nil {
				t.Errorf("contact with id: %v", m)
			}
		case "notes/missing_id", "appointments/missing_id":
			path := map[string]string{"notes": "/notes", "appointments": "/appointments"}[r.Resource]
			var m map[string][]map[string]any
			json.Unmarshal(get("/contacts/"+r.ContactID+path), &m)
			missing := 0
			for _, rec := range m[map[string]string{"notes": "notes", "appointments": "events"}[r.Resource]] {
				if rec["id"] == nil {
					missing++
				}
			}
			if missing != 1 {
				t.Errorf("%s of %s: %d records without id", r.Resource, r.ContactID, missing)
			}
		case "notes/malformed_list", "tasks/malformed_list":
			if b := get("/contacts/" + r.ContactID + "/" + r.Resource); json.Valid(b) {
				t.Errorf("malformed list is valid: %s", b)
			}
		}
	}
	cid, nid, ok := e.s.HugeNote()
	if !ok {
		t.Fatal("no huge note")
	}
	b := get("/contacts/" + cid + "/notes")
	var notes struct{ Notes []api.Note }
	if err := json.Unmarshal(b, &notes); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(notes.Notes, func(n api.Note) bool { return n.ID == nid })
	if i < 0 || len(notes.Notes[i].Body) < 10<<20 {
		t.Error("huge note not served whole")
	}
	// Paging still sees every contact, bad ones included.
	if hits := e.pageAll(e.loc, 30, nil, false); len(hits) != 200 {
		t.Errorf("paging with bad data: %d hits", len(hits))
	}
	// Deleting a spoilt contact removes its rejects.
	for _, r := range rej {
		if r.Resource == "contacts" {
			e.s.DeleteContact(r.ID)
		}
	}
	if n := len(e.s.ExpectedRejects()); n != len(rej)-3 {
		t.Errorf("after deletes: %d rejects, want %d", n, len(rej)-3)
	}
}
