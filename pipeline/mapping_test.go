package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// TestCustomMapping: a mapping file maps two custom fields to typed
// columns (one named by its fieldKey, which needs the location's
// definitions) and renames a column; a fresh extract lands every contact
// with those columns equal to the simulator's truth, on both sinks, and the
// rest of the warehouse still equals the truth.
func TestCustomMapping(t *testing.T) {
	m, err := whsql.LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := whsql.Use(m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { whsql.Use(whsql.DefaultMapping()) })
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnvScopes(t, kind, sim.Config{Seed: 5, Contacts: 120, Locations: 2},
				api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeCustomFieldsRO)
			if _, err := e.run(Options{Lookback: time.Minute}, nil); err != nil {
				t.Fatal(err)
			}
			db := e.db()
			defer db.Close()
			type got struct {
				homepage, interest *string
				value              *float64
			}
			rows, err := db.Query(`SELECT contact_id, homepage, interest, lifetime_value FROM contacts`)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]got{}
			for rows.Next() {
				var id string
				var g got
				if err := rows.Scan(&id, &g.homepage, &g.interest, &g.value); err != nil {
					t.Fatal(err)
				}
				have[id] = g
			}
			rows.Close()
			n, typed := 0, 0
			for _, loc := range e.srv.Locations() {
				for _, ct := range e.srv.Truth(loc) {
					c := ct.Contact
					g, ok := have[c.ID]
					if !ok {
						t.Errorf("contact %s missing", c.ID)
						continue
					}
					n++
					var interest *string
					var value *float64
					for _, cf := range c.CustomFields {
						switch cf.ID {
						case "cf0Xk2LmQ9pR7sT4vW1yZ":
							var s string
							if json.Unmarshal(cf.Value, &s) == nil && interest == nil {
								interest = &s
							}
						case "cf1Xk2LmQ9pR7sT4vW1yZ":
							var f float64
							if json.Unmarshal(cf.Value, &f) == nil && value == nil {
								value = &f
							}
						}
					}
					if value != nil {
						typed++
					}
					if !sameStr(g.homepage, c.Website) || !samePtr(g.interest, interest) || !samePtr(g.value, value) {
						t.Errorf("%s: homepage %v interest %v lifetime_value %v; want %q %v %v", c.ID, deref(g.homepage), deref(g.interest),
							deref(g.value), c.Website, deref(interest), deref(value))
					}
				}
			}
			if n != 120 || typed < 20 {
				t.Fatalf("%d contacts compared, %d with a lifetime value", n, typed)
			}
			e.compare()
		})
	}
}

func sameStr(p *string, s string) bool { return (p == nil && s == "") || (p != nil && *p == s) }

func samePtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
