package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// The real API answers an invalidated access token with 401 "Invalid
// JWT": mid-run (at the 500th of ~2,700 API requests, an event, not a
// time), every location's tokens are invalidated server-side; one refresh
// each and the run completes, equal to the truth.
func TestInvalidatedTokensMidRun(t *testing.T) {
	var served atomic.Int64
	var srv *sim.Server
	var invalidated atomic.Bool
	e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 41, Contacts: 900, Locations: 2, OnRequest: func(kind string) {
		if served.Add(1) == 500 && srv != nil {
			for _, loc := range srv.Locations() {
				srv.InvalidateAccessTokens(loc)
			}
			invalidated.Store(true)
		}
	}})
	srv = e.srv
	conf := &oauth2.Config{ClientID: sim.DefaultClientID, ClientSecret: sim.DefaultClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: e.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	st := auth.NewStore(filepath.Join(t.TempDir(), "tokens.json"))
	for _, loc := range e.srv.Locations() {
		ot, err := conf.Exchange(context.Background(), e.srv.AuthorizeCode(loc, api.ScopeContactsRO, api.ScopeLocationsRO))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(context.Background(), loc, auth.FromOAuth(ot)); err != nil {
			t.Fatal(err)
		}
		e.srcTS[loc] = auth.NewSource(st, loc, auth.Options{OAuth: conf})
	}
	e.srv.ResetStats()
	res, err := e.run(Options{ReconcileEvery: -1}, nil)
	if !invalidated.Load() {
		t.Fatalf("the run made fewer than 500 requests")
	}
	if err != nil {
		t.Fatal(err)
	}
	e.compare()
	stats := e.srv.Stats()
	if stats.ByStatus[401] == 0 || stats.Refreshes < 1 || stats.Refreshes > 2 {
		t.Errorf("401s %d, refreshes %d (want some 401s and at most one refresh per location)", stats.ByStatus[401], stats.Refreshes)
	}
	if res.Rows["contacts"] != 900 {
		t.Errorf("committed %d contacts", res.Rows["contacts"])
	}
}

// Answers of unexpected shapes never look like success.
func TestSearchShapes(t *testing.T) {
	t.Run("no searchAfter: page mode", func(t *testing.T) {
		e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 42, Contacts: 700, Bad: sim.BadData{SearchOmitsCursor: true}})
		if _, err := e.run(Options{ReconcileEvery: -1}, nil); err != nil {
			t.Fatal(err)
		}
		if counts := e.compare(); counts["contacts"] != 700 {
			t.Errorf("contacts %d", counts["contacts"])
		}
	})
	t.Run("no contacts field", func(t *testing.T) {
		e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 43, Contacts: 50, Bad: sim.BadData{SearchOmitsContacts: true}})
		res, err := e.run(Options{ReconcileEvery: -1}, nil)
		if !errors.Is(err, ErrPartial) || !errors.Is(err, extract.ErrNoContacts) || res.Rows["contacts"] != 0 {
			t.Fatalf("err = %v, rows %v: want a partial run that says the answer had no contacts", err, res.Rows)
		}
		if n := e.count(`SELECT count(*) FROM runs WHERE outcome = 'partial'`); n != 1 {
			t.Errorf("partial runs %d", n)
		}
	})
	t.Run("stuck cursor", func(t *testing.T) {
		e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 44, Contacts: 600, Bad: sim.BadData{SearchStuckAtPage: 3}})
		_, err := e.run(Options{ReconcileEvery: -1}, nil)
		var se *extract.StuckCursorError
		if !errors.Is(err, ErrPartial) || !errors.As(err, &se) {
			t.Fatalf("err = %v", err)
		}
		if msg := err.Error(); !strings.Contains(msg, string(se.Cursor)) || strings.Contains(msg, "e+12") {
			t.Errorf("the cursor is not printed as sent: %s", msg)
		}
		if n := e.count(`SELECT count(*) FROM contacts`); n != 200 {
			t.Errorf("kept %d contacts, want the 2 good pages", n)
		}
	})
	t.Run("malformed page", func(t *testing.T) {
		e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 45, Contacts: 300, Bad: sim.BadData{MalformedSearchPage: 2}})
		_, err := e.run(Options{ReconcileEvery: -1}, nil)
		if !errors.Is(err, ErrPartial) || !errors.Is(err, extract.ErrBadPage) {
			t.Fatalf("err = %v", err)
		}
		if n := e.count(`SELECT count(*) FROM contacts`); n != 100 {
			t.Errorf("kept %d contacts, want the good first page", n)
		}
	})
}

// A location whose credentials are unusable is not read; the others are,
// and the run ends partial naming it.
func TestUnusableLocationIsSkipped(t *testing.T) {
	e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 46, Contacts: 200, Locations: 2})
	res, err := e.run(Options{ReconcileEvery: -1}, func(j *Job) {
		j.Locations[1].Unusable = errors.New("no token stored; fix: contacts-etl auth login --locations loc-0002")
	})
	if !errors.Is(err, ErrPartial) || !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "auth login") {
		t.Fatalf("err = %v", err)
	}
	if res.Stopped["loc-0002"] == nil || res.Rows["contacts"] != 100 {
		t.Errorf("stopped %v, rows %v", res.Stopped, res.Rows)
	}
	if n := e.count(`SELECT count(*) FROM contacts WHERE _location_id = 'loc-0002'`); n != 0 {
		t.Errorf("the skipped location has %d contacts", n)
	}
}

// Contacts with rejected records are read again by id in the next runs, a
// bounded number of times, whatever the watermark; the retries are state
// committed with the rows.
func TestRejectedContactsAreRetried(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 47, Contacts: 300, Bad: sim.BadData{MalformedChildList: 2, OddFields: 3}})
			opt := Options{ReconcileEvery: -1, RetryAttempts: 2, Lookback: time.Minute}
			pending := func() map[string]int {
				sink, err := OpenSink(kind, e.path)
				if err != nil {
					t.Fatal(err)
				}
				rs, err := sink.PendingRetries(context.Background(), "sim", e.srv.Locations()[0], 100)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]int{}
				for _, r := range rs {
					out[r.ContactID] = r.Attempts
				}
				return out
			}
			want := map[string]bool{}
			for _, b := range e.srv.ExpectedRejects() {
				want[b.ContactID] = true
			}
			for _, f := range e.srv.ExpectedFieldRejects() {
				want[f.ContactID] = true
			}
			delete(want, "")
			for run := 1; run <= 4; run++ {
				e.srv.ResetStats()
				if _, err := e.run(opt, nil); err != nil && !errors.Is(err, ErrPartial) {
					t.Fatal(err)
				}
				reads := e.srv.Stats().ByKind["contact"]
				got := pending()
				switch run {
				case 1:
					if reads != 0 || len(got) != len(want) {
						t.Errorf("run 1: %d reads by id, pending %v, want %d contacts", reads, got, len(want))
					}
				case 2, 3:
					if reads != int64(len(want)) {
						t.Errorf("run %d: %d contacts read again, want %d", run, reads, len(want))
					}
				case 4:
					if reads != 0 {
						t.Errorf("run 4: %d contacts read again after the attempts ran out", reads)
					}
				}
				for id := range want {
					if got[id] != min(run, 3) {
						t.Errorf("run %d: contact %s attempts %d", run, id, got[id])
					}
				}
			}
			e.compare() // nothing else changed, nothing duplicated
		})
	}
}

// TargetsOnly reads exactly the named contacts (a webhook apply, a push's
// read-back): changes arrive, a contact the API no longer has is
// soft-deleted with its children, and nothing else is requested.
func TestTargetsOnly(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 48, Contacts: 120})
			if _, err := e.run(Options{ReconcileEvery: -1}, nil); err != nil {
				t.Fatal(err)
			}
			loc := e.srv.Locations()[0]
			truth := e.srv.Truth(loc)
			upd, del, noted := truth[3].Contact.ID, truth[7].Contact.ID, truth[11].Contact.ID
			if err := e.srv.UpdateContact(upd, func(c *api.Contact) { c.FirstName = "Changed" }); err != nil {
				t.Fatal(err)
			}
			if err := e.srv.DeleteContact(del); err != nil {
				t.Fatal(err)
			}
			e.srv.AddNote(noted)
			e.srv.ResetStats()
			res, err := e.run(Options{TargetsOnly: true, ReconcileEvery: -1}, func(j *Job) {
				j.Locations[0].Targets = []string{upd, del, noted}
			})
			if err != nil {
				t.Fatal(err)
			}
			st := e.srv.Stats()
			if st.ByKind["search"] != 0 || st.ByKind["contact"] != 3 || st.ByKind["notes"] != 2 {
				t.Errorf("requests %v, want 3 contacts and the children of the 2 that exist", st.ByKind)
			}
			counts := e.compare()
			if counts["contacts_deleted"] != 1 || res.Rows["contacts"] != 2 {
				t.Errorf("soft-deleted %d contacts, committed %v", counts["contacts_deleted"], res.Rows)
			}
		})
	}
}
