package webhook_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // reads the warehouse back
	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/webhook"
)

const source = "sim"

// world is a simulator on loopback, a DuckDB warehouse exported from it
// once, and a test-controlled Ed25519 webhook key.
type world struct {
	t       testing.TB
	srv     *sim.Server
	base    string
	path    string
	clients []*extract.Client
	priv    ed25519.PrivateKey
	pubB64  string // SPKI, base64
	keys    webhook.Keys
}

func newWorld(t testing.TB, contacts int) *world {
	t.Helper()
	cfg := sim.Config{Locations: 2, Contacts: contacts, Seed: 12, StaticTokens: map[string]sim.StaticToken{}}
	probe := sim.New(sim.Config{Locations: cfg.Locations})
	srcs := map[string]oauth2.TokenSource{}
	for i, loc := range probe.Locations() {
		tok := fmt.Sprintf("pit-wh-%d", i)
		cfg.StaticTokens[tok] = sim.StaticToken{LocationID: loc, Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO}}
		srcs[loc] = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})
	}
	w := &world{t: t, srv: sim.New(cfg)}
	base, err := w.srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.srv.Close() })
	w.base = base
	w.path = filepath.Join(t.TempDir(), "w.duckdb")
	w.clients, err = pipeline.Clients(w.srv.Locations(), srcs, pipeline.ClientOptions{BaseURL: base, Concurrency: 4,
		RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	w.priv, w.pubB64 = priv, base64.StdEncoding.EncodeToString(der)
	if w.keys, err = webhook.ParseKeys([]string{w.pubB64}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) settings() pipeline.Settings {
	return pipeline.Settings{Source: source, Command: "run", PageLimit: 100, Concurrency: 4, Children: extract.ChildResources,
		BatchRows: 300, CommitRows: 500, Options: pipeline.DefaultOptions()}
}

// run is a scheduled run (full: every contact and its children again).
func (w *world) run(full bool) {
	w.t.Helper()
	sink, err := pipeline.OpenSink(pipeline.WarehouseDuckDB, w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer sink.Close(context.Background())
	s := w.settings()
	s.Options.Full = full
	var locs []pipeline.Location
	for _, c := range w.clients {
		locs = append(locs, pipeline.Location{Client: c})
	}
	if _, err := pipeline.Run(context.Background(), pipeline.NewJob(s, locs, sink, nil)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) apply() *webhook.PipelineApply {
	return &webhook.PipelineApply{Kind: pipeline.WarehouseDuckDB, Path: w.path, Settings: w.settings(), Clients: w.clients}
}

// receiver serves a receiver over loopback HTTP on the inbox.
func (w *world) receiver(in *webhook.Inbox) (*webhook.Receiver, string) {
	r := webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: w.keys})
	hs := httptest.NewServer(r)
	w.t.Cleanup(hs.Close)
	return r, hs.URL
}

// checkContacts asserts that each contact (by id) is in the warehouse as
// the truth has it, with exactly its children; deleted ones soft-deleted
// with their children. It returns how many differ (reported as errors
// when report is set).
func (w *world) checkContacts(ids map[string]bool, report bool) int {
	t := w.t.(*testing.T) // the truth package reports through a *testing.T
	t.Helper()
	want := truth.Tables(t, w.srv, w.srv.Locations())
	deleted := map[string]bool{}
	for _, loc := range w.srv.Locations() {
		for _, ct := range w.srv.Truth(loc) {
			if ct.Deleted {
				deleted[ct.Contact.ID] = true
			}
		}
	}
	db := truth.OpenRO(t, w.path)
	defer db.Close()
	bad := 0
	fail := func(format string, args ...any) {
		bad++
		if report && bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, table := range []string{"contacts", "tasks", "notes", "appointments"} {
		got := truth.ReadTable(t, db, table, source)
		byContact := func(rows map[string]truth.Row, live bool) map[string]map[string]truth.Row {
			out := map[string]map[string]truth.Row{}
			for id, r := range rows {
				if live && r["_deleted_at"] != nil {
					continue
				}
				c := fmt.Sprint(r["contact_id"])
				if out[c] == nil {
					out[c] = map[string]truth.Row{}
				}
				out[c][id] = r
			}
			return out
		}
		wantBy, gotLive, gotAll := byContact(want[table], false), byContact(got, true), byContact(got, false)
		for c := range ids {
			if deleted[c] {
				for id, g := range gotAll[c] {
					if g["_deleted_at"] == nil {
						fail("%s %s of deleted contact %s not soft-deleted", table, id, c)
					}
				}
				continue
			}
			if len(wantBy[c]) != len(gotLive[c]) {
				fail("%s of contact %s: %d rows, want %d", table, c, len(gotLive[c]), len(wantBy[c]))
				continue
			}
			for id, wr := range wantBy[c] {
				g, ok := gotLive[c][id]
				if !ok {
					fail("%s %s of contact %s missing", table, id, c)
					continue
				}
				for col, wv := range wr {
					if !truth.SameValue(col, wv, g[col]) {
						fail("%s %s.%s = %#v, want %#v", table, id, col, g[col], wv)
					}
				}
			}
		}
	}
	return bad
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
