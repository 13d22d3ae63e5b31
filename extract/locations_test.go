package extract

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// multiLoc starts a simulator with one static token per location (scopes
// as given) and returns a client per location.
func multiLoc(t *testing.T, cfg sim.Config, scopes ...string) (*sim.Server, map[string]*Client) {
	t.Helper()
	cfg.StaticTokens = map[string]sim.StaticToken{}
	for i := range cfg.Locations {
		loc := sim.New(sim.Config{Locations: cfg.Locations}).Locations()[i]
		cfg.StaticTokens["pit-"+loc] = sim.StaticToken{LocationID: loc, Scopes: scopes}
	}
	srv := sim.New(cfg)
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cs := map[string]*Client{}
	for _, loc := range srv.Locations() {
		c, err := NewClient(base, loc, &http.Client{Transport: bearer("pit-" + loc), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cs[loc] = c
	}
	return srv, cs
}

// Each location tells its own zone; without locations.readonly the client
// says so with ErrNoLocationScope.
func TestLocationTimeZone(t *testing.T) {
	_, cs := multiLoc(t, sim.Config{Seed: 1, Locations: 3}, api.ScopeContactsRO, api.ScopeLocationsRO)
	for i, loc := range []string{"loc-0001", "loc-0002", "loc-0003"} {
		name, err := cs[loc].LocationTimeZone(context.Background())
		if err != nil || name != sim.DefaultTimeZones[i] {
			t.Errorf("%s: zone %q err %v, want %s", loc, name, err, sim.DefaultTimeZones[i])
		}
	}
	_, cs = multiLoc(t, sim.Config{Seed: 1, Locations: 1, TimeZones: []string{"Europe/Berlin"}}, api.ScopeContactsRO)
	name, err := cs["loc-0001"].LocationTimeZone(context.Background())
	var he *api.HTTPError
	if !errors.Is(err, ErrNoLocationScope) || !errors.As(err, &he) || he.Status != 401 || name != "" {
		t.Fatalf("without the scope: %q, %v; want ErrNoLocationScope", name, err)
	}
}

// Zone-less appointment times are in the location's zone: read in the zone
// LocationTimeZone tells, every served time is the true instant, across the
// spring gap and the autumn overlap of daylight saving time alike; read as
// UTC, most are hours off.
func TestAppointmentTimesInLocationZone(t *testing.T) {
	srv, cs := multiLoc(t, sim.Config{Seed: 2, Contacts: 600, Locations: 3}, api.ScopeContactsRO, api.ScopeLocationsRO)
	ctx := context.Background()
	for _, loc := range srv.Locations() {
		name, err := cs[loc].LocationTimeZone(ctx)
		if err != nil {
			t.Fatal(err)
		}
		zone, _ := time.LoadLocation(name)
		truth := map[string]sim.EventTime{}
		for _, c := range srv.Truth(loc) {
			for _, et := range c.EventTimes {
				truth[et.ID] = et
			}
		}
		var naive, wrongAsUTC, spring, autumn, offset int
		for _, c := range srv.Truth(loc) {
			items, _, problem, err := cs[loc].Children(ctx, c.Contact.ID, api.ResourceAppointments)
			if err != nil || problem != "" {
				t.Fatalf("%s: %v %s", c.Contact.ID, err, problem)
			}
			for _, raw := range items {
				var e api.Event
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				want := truth[e.ID]
				start, zoned := readTime(t, e.StartTime, zone)
				end, _ := readTime(t, e.EndTime, zone)
				if !start.Equal(want.Start) || !end.Equal(want.End) {
					t.Fatalf("%s %s: read %v..%v, truth %v..%v", loc, e.ID, start, end, want.Start, want.End)
				}
				if zoned {
					offset++
					continue
				}
				naive++
				if want.Zone != name {
					t.Errorf("%s: truth zone %q, location zone %q", e.ID, want.Zone, name)
				}
				if u, _ := readTime(t, e.StartTime, time.UTC); !u.Equal(want.Start) {
					wrongAsUTC++
				}
				_, so := want.Start.In(zone).Zone()
				_, eo := want.End.In(zone).Zone()
				switch {
				case eo > so:
					spring++
				case eo < so:
					autumn++
				}
			}
		}
		t.Logf("%s (%s): %d zone-less (%d across spring, %d across autumn), %d with offset", loc, name, naive, spring, autumn, offset)
		if naive == 0 || offset == 0 || wrongAsUTC != naive {
			t.Errorf("%s: %d zone-less, %d with offset, %d wrong read as UTC", loc, naive, offset, wrongAsUTC)
		}
		if name != "Asia/Kolkata" && (spring == 0 || autumn == 0) {
			t.Errorf("%s: %d across the spring change, %d across the autumn one; want some of each", loc, spring, autumn)
		}
	}
}

// readTime reads an appointment time: with an offset, or zone-less in zone.
func readTime(t *testing.T, s string, zone *time.Location) (time.Time, bool) {
	t.Helper()
	if v, err := time.Parse(time.RFC3339, s); err == nil {
		return v.UTC(), true
	}
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, zone)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v.UTC(), false
}

// Children belong to the contact of the request path: a body contactId
// that names another contact never re-parents them.
func TestChildrenKeepThePathContact(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 8, Contacts: 200, ChildContactMismatch: 0.2}, nil)
	out := make(chan api.Record, 1<<14)
	err := Stream(context.Background(), e.c, StreamOptions{Query: Query{PageLimit: 100}, Children: ChildResources}, out)
	close(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // child id -> parent
	for r := range out {
		if r.Mark == nil && r.Resource != api.ResourceContacts {
			var k struct{ ID string }
			json.Unmarshal(r.Raw, &k)
			got[r.Resource+"/"+k.ID] = r.ContactID
		}
	}
	want, foreign := map[string]string{}, 0
	for _, c := range e.srv.Truth("loc-0001") {
		add := func(res, id, body string) {
			want[res+"/"+id] = c.Contact.ID
			if body != c.Contact.ID {
				foreign++
			}
		}
		for _, x := range c.Tasks {
			add(api.ResourceTasks, x.ID, x.ContactID)
		}
		for _, x := range c.Notes {
			add(api.ResourceNotes, x.ID, x.ContactID)
		}
		for _, x := range c.Events {
			add(api.ResourceAppointments, x.ID, x.ContactID)
		}
	}
	if foreign < len(want)/10 {
		t.Fatalf("%d of %d children carry another contactId: the switch does nothing", foreign, len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("read %d children, truth has %d", len(got), len(want))
	}
	for id, parent := range want {
		if got[id] != parent {
			t.Errorf("%s: parent %q, want %q", id, got[id], parent)
		}
	}
}
