// Package sim is a simulator of the Contacts API (HighLevel API v2 shape):
// a real HTTP server with OAuth, scopes, per-location rate limits, seeded
// data of any size, mutations between runs, fault injection and bad data.
// It knows its ground truth (Truth, ExpectedRejects) so tests can compare a
// warehouse with it record by record.
//
// Endpoints (api.md; shapes are the types of extract/api):
//
//	POST /contacts/search                  {"contacts":[...],"total":N}
//	GET  /contacts/?locationId=&limit=&startAfter=&startAfterId=
//	GET  /contacts/{id}                    {"contact":{...}}
//	GET  /contacts/{id}/tasks              {"tasks":[...]}
//	GET  /contacts/{id}/notes              {"notes":[...]}
//	GET  /contacts/{id}/notes/{noteId}     {"note":{...}}
//	GET  /contacts/{id}/appointments       {"events":[...]}
//	GET  /locations/{locationId}           {"location":{...}} (scope locations.readonly)
//	GET  /locations/{locationId}/customFields {"customFields":[...]} (scope locations/customFields.readonly; customfields.go)
//	POST /locations/{locationId}/tasks/search {"tasks":[...]} (scope locations/tasks.readonly; bulk.go)
//	GET  /calendars/?locationId=           {"calendars":[...]} (scope calendars.readonly)
//	GET  /calendars/events?locationId=&calendarId=&startTime=&endTime= {"events":[...]} (scope calendars/events.readonly)
//	POST /oauth/token                      authorization_code | refresh_token
//	GET  /oauth/authorize                  302 to redirect_uri?code=&state=
//	POST /oauth/revoke                     token=
//	POST /oauth/locationToken              Company bearer → location token
//	POST /oauth/reconnect                  JSON client credentials + location → new code
//
// API requests are checked in this order: bearer token (401 MsgInvalidJWT,
// for an unknown, revoked or expired token alike, as the real API), the rate limit of the token's location (429
// MsgTooMany), injected faults, the Version header (400 MsgBadVersion), the
// contacts.readonly scope (401 MsgScope), then in the endpoint: validation
// (422, message an array), location access (403 MsgLocation) and existence
// (404 MsgContactNotFound). Errors use the envelope
// {"statusCode","message","error","traceId"}; OAuth errors use
// {"error","error_description","traceId"}. Every API answer carries the
// X-RateLimit-* headers.
//
// All methods of Server are safe for concurrent use.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Server is the simulated API. It is an http.Handler; Start also serves it
// on a listener of its own.
type Server struct {
	cfg     Config
	epochMs int64
	mux     *http.ServeMux

	mu      sync.RWMutex // guards the fields below and every location's list and snap
	locs    []*location
	locByID map[string]*location
	byID    map[string]*contact
	badIDs  []string // contacts with a badSpec
	added   int      // contacts added by AddContact
	hugeCID string
	hugeNID string

	auth   authStore
	limits limiter
	faults faulter
	stats  statsBox
	trace  atomic.Uint64
	writes writeState // writes.go

	srvMu sync.Mutex
	srv   *http.Server
}

// New generates the world described by cfg. Children (tasks, notes,
// appointments) of generated contacts are rebuilt from the seed on each use.
func New(cfg Config) *Server {
	cfg.applyDefaults()
	s := &Server{cfg: cfg, epochMs: cfg.Epoch.UnixMilli(), locByID: map[string]*location{}, byID: make(map[string]*contact, cfg.Contacts)}
	for i := range cfg.Locations {
		l := &location{id: fmt.Sprintf("loc-%04d", i+1), zoneName: cfg.TimeZones[i%len(cfg.TimeZones)]}
		if len(cfg.LocationIDs) > 0 {
			l.id = cfg.LocationIDs[i]
			if l.id == "" || s.locByID[l.id] != nil {
				panic(fmt.Sprintf("sim: location id %q empty or repeated", l.id))
			}
		}
		z, err := time.LoadLocation(l.zoneName)
		if err != nil {
			panic(fmt.Sprintf("sim: time zone %q: %v", l.zoneName, err))
		}
		l.zone = z
		s.locs = append(s.locs, l)
		s.locByID[l.id] = l
	}
	for i := range cfg.Contacts {
		l := s.locs[i%len(s.locs)]
		c, addMs, updMs := genContact(cfg.Seed, s.epochMs, i, l.id)
		if i < cfg.OddIDs {
			c.ID = oddID(c.ID, i)
		}
		ct := &contact{c: c, loc: l, pos: len(l.list), addMs: addMs, updMs: updMs, enc: &encodings{}}
		idx := i
		ko := kidOpts{zone: l.zone, mismatch: cfg.ChildContactMismatch}
		ct.kids = &kids{gen: func() *kids { return genKids(cfg.Seed, idx, &ct.c, addMs, updMs, ko) }}
		l.list = append(l.list, ct)
		s.byID[c.ID] = ct
	}
	s.injectBad()
	s.auth.init()
	s.limits.m = map[string]*window{}
	s.faults.init()
	s.stats.reset()
	s.mux = s.routes()
	return s
}

// Locations returns the location ids, "loc-0001" and up.
func (s *Server) Locations() []string {
	out := make([]string, len(s.locs))
	for i, l := range s.locs {
		out[i] = l.id
	}
	return out
}

// TimeZone returns the IANA zone of a location ("" for an unknown one).
func (s *Server) TimeZone(locationID string) string {
	if l := s.locByID[locationID]; l != nil {
		return l.zoneName
	}
	return ""
}

// CompanyID returns the id of the company that owns every location.
func (s *Server) CompanyID() string { return s.cfg.CompanyID }

// HugeNote returns where the 10 MB note of BadData.HugeNote is.
func (s *Server) HugeNote() (contactID, noteID string, ok bool) {
	return s.hugeCID, s.hugeNID, s.hugeNID != ""
}

// ServeHTTP serves the API, see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start serves on addr ("127.0.0.1:0" picks a port) until Close and returns
// the base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sim: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.srvMu.Lock()
	if s.srv != nil {
		s.srvMu.Unlock()
		ln.Close()
		return "", errors.New("sim: already started")
	}
	s.srv = srv
	s.srvMu.Unlock()
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server started by Start, dropping open connections.
func (s *Server) Close() error {
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// injectBad spoils the records asked for by cfg.Bad; see BadData.
func (s *Server) injectBad() {
	b := s.cfg.Bad
	n := len(s.byID)
	if n == 0 {
		return
	}
	r := rand.New(rand.NewPCG(uint64(s.cfg.Seed), saltBad))
	used := map[int]bool{}
	// take returns an unused generated contact satisfying ok, or nil.
	take := func(ok func(*contact) bool) *contact {
		for range 2000 {
			i := r.IntN(n)
			if used[i] {
				continue
			}
			l := s.locs[i%len(s.locs)]
			c := l.list[i/len(s.locs)]
			if ok != nil && !ok(c) {
				continue
			}
			used[i] = true
			if c.bad == nil {
				c.bad = &badSpec{}
				s.badIDs = append(s.badIDs, c.c.ID)
			}
			return c
		}
		return nil
	}
	hasTasks := func(c *contact) bool { return len(c.kids.get().tasks) > 0 }
	hasNotes := func(c *contact) bool { return len(c.kids.get().notes) > 0 }
	hasEvents := func(c *contact) bool { return len(c.kids.get().events) > 0 }
	for i := range b.WrongTypes {
		if c := take(hasTasks); i%2 == 1 && c != nil {
			c.bad.taskID = c.kids.get().tasks[0].ID
		} else if c != nil {
			c.bad.contact = KindWrongType
		}
	}
	for i := range b.InvalidUTF8 {
		if c := take(hasNotes); i%2 == 1 && c != nil {
			c.kids = c.kids.clone()
			k := c.kids
			c.bad.noteID, c.bad.noteKind = k.notes[0].ID, KindInvalidUTF8
			k.notes[0].Body = "Caf\xe9 order: call back \xff\xfe before noon"
		} else if c != nil {
			c.bad.contact = KindInvalidUTF8
			c.c.FirstName = "Jos\xe9"
		}
	}
	for i := range b.MissingID {
		switch i % 3 {
		case 0:
			if c := take(nil); c != nil {
				c.bad.contact = KindMissingID
			}
		case 1:
			if c := take(hasNotes); c != nil {
				c.bad.noteID, c.bad.noteKind = c.kids.get().notes[0].ID, KindMissingID
			}
		case 2:
			if c := take(hasEvents); c != nil {
				c.bad.eventID = c.kids.get().events[0].ID
			}
		}
	}
	for i := range b.MalformedChildList {
		if c := take(nil); c != nil {
			if i%2 == 0 {
				c.bad.notesList = true
			} else {
				c.bad.tasksList = true
			}
		}
	}
	s.injectOdd(take)
	if b.HugeNote {
		if c := take(nil); c != nil {
			c.kids = c.kids.clone()
			k := c.kids
			id := makeID(uint64(s.cfg.Seed), saltNote, 1<<40)
			k.notes = append(k.notes, api.Note{ID: id, Body: hugeBody(), UserID: users[0], ContactID: c.c.ID,
				DateAdded: c.c.DateUpdated, Title: "Transcript"})
			s.hugeCID, s.hugeNID = c.c.ID, id
		}
	}
	// A contact taken for the huge note only needs no badSpec.
	for _, id := range s.badIDs {
		if c := s.byID[id]; *c.bad == (badSpec{}) {
			c.bad = nil
		}
	}
	s.badIDs = slices.DeleteFunc(s.badIDs, func(id string) bool { return s.byID[id].bad == nil })
}

func hugeBody() string {
	const line = "Transcript line: the quick brown fox jumps over the lazy dog — ça va, 你好.\n"
	var sb strings.Builder
	sb.Grow(10<<20 + len(line))
	for sb.Len() < 10<<20 {
		sb.WriteString(line)
	}
	return sb.String()
}
