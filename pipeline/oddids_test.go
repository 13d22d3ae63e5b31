package pipeline

import (
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// Contact ids holding what a URL path must escape ('/', '%', ' ', '?', '#',
// non-ASCII, a literal "%2F"): a full run exports every record of theirs,
// and a second run that reconciles deletes none of them. Before the client
// escaped each path segment once, their child lists and reads answered 404,
// which a run takes for "deleted since the search".
func TestOddContactIDs(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 14, Contacts: 160, Locations: 2, OddIDs: 24})
			opt := Options{Lookback: time.Minute, ReconcileEvery: 1}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			if n := e.count(`SELECT count(*) FROM contacts WHERE contact_id LIKE '%/%' OR contact_id LIKE '%\%%' ESCAPE '\'`); n < 6 {
				t.Fatalf("%d contacts with '/' or '%%' in their ids, want the simulator's odd ones", n)
			}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			if n := e.count(`SELECT count(*) FROM contacts WHERE _deleted_at IS NOT NULL`); n != 0 {
				t.Errorf("%d contacts soft-deleted after a reconciliation, want 0", n)
			}
		})
	}
}

// Location ids holding what a URL path must escape: both sinks keep their
// rows apart (the Parquet sink partitions its folders by location).
func TestOddLocationIDs(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 15, Contacts: 80, Locations: 3,
				LocationIDs: []string{"loc/1 é", "loc%2F2?#", "loc=3"}})
			if _, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: 1}, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			if n := e.count(`SELECT count(DISTINCT _location_id) FROM contacts WHERE _location_id IN ('loc/1 é', 'loc%2F2?#', 'loc=3')`); n != 3 {
				t.Errorf("%d of the 3 odd location ids in contacts", n)
			}
		})
	}
}
