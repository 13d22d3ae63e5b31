package extract

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// liveIDs is the ground truth: the live contacts of the location, by
// dateUpdated then id.
func liveIDs(srv *sim.Server, since, until time.Time) []string {
	type kv struct {
		upd time.Time
		id  string
	}
	var all []kv
	for _, c := range srv.Truth("loc-0001") {
		u, _ := time.Parse(time.RFC3339Nano, c.Contact.DateUpdated)
		if c.Deleted || u.Before(since) || (!until.IsZero() && !u.Before(until)) {
			continue
		}
		all = append(all, kv{u, c.Contact.ID})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := a.upd.Compare(b.upd); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]string, len(all))
	for i, x := range all {
		out[i] = x.id
	}
	return out
}

// collect pages through q and returns the ids read in order (first
// occurrence only) and the pages.
func collect(t *testing.T, c *Client, q Query) ([]string, []Page, error) {
	t.Helper()
	var ids []string
	var pages []Page
	seen := map[string]bool{}
	err := c.SearchContacts(context.Background(), q, func(p Page) error {
		pages = append(pages, p)
		for _, id := range p.IDs {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		return nil
	})
	return ids, pages, err
}

// A search answer without a contacts field is an error, never an empty page.
func TestSearchWithoutContactsIsAnError(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 4, Contacts: 30, Bad: sim.BadData{SearchOmitsContacts: true}}, nil)
	ids, _, err := collect(t, e.c, Query{PageLimit: 10})
	if !errors.Is(err, ErrNoContacts) || !errors.Is(err, ErrBadPage) || len(ids) != 0 {
		t.Fatalf("err %v, %d ids; want ErrNoContacts and nothing read", err, len(ids))
	}
}

// Results without searchAfter fall back to page mode in dateUpdated
// windows under the 10,000-result cap (the simulator refuses page*limit
// over 10,000 with a 422): every contact is read, in order.
func TestSearchWithoutCursorFallsBackToPageMode(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 5, Contacts: 12_500, Bad: sim.BadData{SearchOmitsCursor: true}}, nil)
	want := liveIDs(e.srv, time.Time{}, time.Time{})
	ids, pages, err := collect(t, e.c, Query{PageLimit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("read %d contacts, want %d in dateUpdated order", len(ids), len(want))
	}
	for i, p := range pages {
		if !p.PageMode || len(p.Cursor) != 2 || p.Number != i+1 {
			t.Fatalf("page %d: mode %v cursor %v number %d", i, p.PageMode, p.Cursor, p.Number)
		}
	}
	if len(pages) <= 12_500/500 {
		t.Errorf("%d pages: the cap should have forced a second window", len(pages))
	}

	// A window, and a resume from a page-mode cursor, read what is left.
	since, until := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	want = liveIDs(e.srv, since, until)
	ids, pages, err = collect(t, e.c, Query{PageLimit: 100, UpdatedSince: since, UpdatedUntil: until})
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("window: read %d, want %d (err %v)", len(ids), len(want), err)
	}
	after := pages[10].Cursor
	ids, _, err = collect(t, e.c, Query{PageLimit: 100, UpdatedSince: since, UpdatedUntil: until, After: after})
	if err != nil {
		t.Fatal(err)
	}
	rest := want[slices.Index(want, after[1].(string))+1:]
	for _, id := range rest {
		if !slices.Contains(ids, id) {
			t.Fatalf("resume after %v: %s not read", after, id)
		}
	}
}

// A cursor that does not advance ends the search with a *StuckCursorError
// carrying the cursor as the API sent it; the pages before it are read.
func TestSearchStuckCursor(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 6, Contacts: 50, Bad: sim.BadData{SearchStuckAtPage: 3}}, nil)
	want := liveIDs(e.srv, time.Time{}, time.Time{})
	ids, pages, err := collect(t, e.c, Query{PageLimit: 10})
	var se *StuckCursorError
	if !errors.As(err, &se) || !errors.Is(err, ErrCursorStuck) {
		t.Fatalf("err = %v, want a StuckCursorError", err)
	}
	if len(pages) != 2 || !slices.Equal(ids, want[:20]) {
		t.Fatalf("read %d pages, %d ids; want the first 2 pages", len(pages), len(ids))
	}
	var sent []json.RawMessage
	if err := json.Unmarshal(se.Cursor, &sent); err != nil || len(sent) != 2 {
		t.Fatalf("cursor %s", se.Cursor)
	}
	var last sim.ContactTruth
	for _, c := range e.srv.Truth("loc-0001") {
		if c.Contact.ID == want[19] {
			last = c
		}
	}
	u, _ := time.Parse(time.RFC3339Nano, last.Contact.DateUpdated)
	wantCursor := `[` + strings.TrimSpace(string(mustMarshal(u.UnixMilli()))) + `,"` + last.Contact.ID + `"]`
	if string(se.Cursor) != wantCursor || !strings.Contains(err.Error(), wantCursor) {
		t.Errorf("cursor %s (error %q), want %s as sent", se.Cursor, err, wantCursor)
	}

	// Stream delivers the good pages with their marks, then the error, and
	// no Done mark: the run commits what was read and ends partial.
	out := make(chan api.Record, 1000)
	err = Stream(context.Background(), e.c, StreamOptions{Query: Query{PageLimit: 10}}, out)
	close(out)
	marks, contacts := 0, 0
	for r := range out {
		switch {
		case r.Mark != nil && r.Mark.Done:
			t.Error("Done mark after a stuck cursor")
		case r.Mark != nil:
			marks++
		default:
			contacts++
		}
	}
	if !errors.As(err, &se) || marks != 2 || contacts != 20 {
		t.Errorf("stream: err %v, %d marks, %d contacts; want the stuck cursor, 2 and 20", err, marks, contacts)
	}
}

// A search page that stays malformed is fetched three times, then ends the
// search with ErrBadPage; the pages before it are read.
func TestSearchMalformedPage(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 7, Contacts: 50, Bad: sim.BadData{MalformedSearchPage: 2}}, nil)
	want := liveIDs(e.srv, time.Time{}, time.Time{})
	ids, _, err := collect(t, e.c, Query{PageLimit: 10})
	if !errors.Is(err, ErrBadPage) || !slices.Equal(ids, want[:10]) {
		t.Fatalf("err %v, %d ids; want ErrBadPage after page 1", err, len(ids))
	}
	if n := e.srv.Stats().ByKind["search"]; n != 1+3 {
		t.Errorf("%d search requests, want 4", n)
	}
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// CheckSearch reads one real page and fails when the run could not use it.
func TestCheckSearch(t *testing.T) {
	cases := []struct {
		name     string
		cfg      sim.Config
		wantErr  error
		pageMode bool
		warnings int
	}{
		{"good", sim.Config{Seed: 9, Contacts: 40}, nil, false, 0},
		{"no contacts field", sim.Config{Seed: 9, Contacts: 40, Bad: sim.BadData{SearchOmitsContacts: true}}, ErrNoContacts, false, 0},
		{"no cursor", sim.Config{Seed: 9, Contacts: 40, Bad: sim.BadData{SearchOmitsCursor: true}}, nil, true, 1},
		{"malformed page", sim.Config{Seed: 9, Contacts: 40, Bad: sim.BadData{MalformedSearchPage: 1}}, ErrBadPage, false, 0},
		{"empty location", sim.Config{Seed: 9}, nil, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startSim(t, tc.cfg, nil)
			r, err := e.c.CheckSearch(context.Background())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Total != tc.cfg.Contacts || r.Contacts != min(tc.cfg.Contacts, CheckPageLimit) || r.WithIDs != r.Contacts ||
				r.PageMode != tc.pageMode || r.Cursor == (tc.pageMode || tc.cfg.Contacts == 0) || len(r.Warnings) != tc.warnings || r.Limits.Max == 0 {
				t.Errorf("check %+v", r)
			}
		})
	}
}
