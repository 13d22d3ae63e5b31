package pipeline

import (
	"slices"
	"strings"
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

// A reconciliation over odd contact ids (mixed case, '/', '%', non-ASCII:
// their byte order is not a case- or accent-aware one) soft-deletes
// exactly the contacts deleted upstream, with their children, on both
// sinks; and the unchanged check finds every odd id: a run after an
// unchanged one reads no child list.
func TestReconcileOddIDs(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 17, Contacts: 200, Locations: 2, OddIDs: 40})
			opt := Options{Lookback: time.Minute, ReconcileEvery: 0}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			e.srv.ResetStats()
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			if st := e.srv.Stats(); st.ByKind["tasks"]+st.ByKind["notes"]+st.ByKind["appointments"] != 0 {
				t.Errorf("a run with nothing changed read child lists: %v", st.ByKind)
			}
			// Quietly (no dateUpdated to find them by): every other odd id
			// and every fifth plain one.
			var gone []string
			odd := 0
			for _, loc := range e.srv.Locations() {
				for i, ct := range e.srv.Truth(loc) {
					id := ct.Contact.ID
					isOdd := slices.ContainsFunc(sim.OddIDPieces, func(p string) bool { return strings.Contains(id, p) })
					if isOdd {
						odd++
					}
					if (isOdd && odd%2 == 0) || (!isOdd && i%5 == 0) {
						if err := e.srv.DeleteContact(id); err != nil {
							t.Fatal(err)
						}
						gone = append(gone, id)
					}
				}
			}
			if odd < 40 || len(gone) < 40 {
				t.Fatalf("%d odd ids, %d deleted", odd, len(gone))
			}
			res, err := e.run(opt, nil)
			if err != nil {
				t.Fatal(err)
			}
			counts := e.compare()
			if counts["contacts_deleted"] != len(gone) {
				t.Errorf("soft-deleted %d contacts, want %d", counts["contacts_deleted"], len(gone))
			}
			db := e.db()
			defer db.Close()
			rows, err := db.Query(`SELECT contact_id FROM contacts WHERE _deleted_at IS NOT NULL ORDER BY contact_id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var deleted []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				deleted = append(deleted, id)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			slices.Sort(gone)
			if !slices.Equal(deleted, gone) {
				t.Errorf("soft-deleted %q\nwant %q", deleted, gone)
			}
			if res.Rows["contacts"] != 0 {
				t.Errorf("the reconciling run wrote %d contacts, want 0", res.Rows["contacts"])
			}
		})
	}
}
