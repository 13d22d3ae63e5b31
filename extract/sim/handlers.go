package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Error messages of the API, kept verbatim: clients key on some of them.
const (
	MsgInvalidJWT      = "Invalid JWT"
	MsgBadVersion      = "Version header is missing or not supported"
	MsgScope           = "The token is not authorized for this scope."
	MsgLocation        = "The token does not have access to this location."
	MsgTooMany         = "Too many requests"
	MsgContactNotFound = "Contact not found"
	MsgNoteNotFound    = "Note not found"
	MsgNotFound        = "Not found"
)

// reply is an answer before it is written (and perhaps spoilt).
type reply struct {
	status int
	body   []byte
	ctype  string
	header http.Header
}

func jsonReply(status int, body []byte) reply {
	return reply{status: status, body: body, ctype: "application/json; charset=utf-8"}
}

func (s *Server) traceID() string {
	n := s.trace.Add(1)
	a, b := hash(uint64(s.cfg.Seed), saltTrace, n), hash(n, saltTrace)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(a), uint16(a>>32), uint16(a>>48), uint16(b), b>>16)
}

// errReply renders the error envelope; msg is a string or, on 422, []string.
func (s *Server) errReply(status int, msg any) reply {
	return jsonReply(status, marshal(struct {
		StatusCode int    `json:"statusCode"`
		Message    any    `json:"message"`
		Error      string `json:"error"`
		TraceID    string `json:"traceId"`
	}{status, msg, http.StatusText(status), s.traceID()}))
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /contacts/search", s.api("search", s.search))
	m.HandleFunc("GET /contacts/{$}", s.api("list", s.list))
	m.HandleFunc("GET /contacts", s.api("list", s.list))
	m.HandleFunc("GET /contacts/{id}", s.api("contact", s.getContact))
	m.HandleFunc("GET /contacts/{id}/tasks", s.api("tasks", s.child(api.ResourceTasks)))
	m.HandleFunc("GET /contacts/{id}/notes", s.api("notes", s.child(api.ResourceNotes)))
	m.HandleFunc("GET /contacts/{id}/appointments", s.api("appointments", s.child(api.ResourceAppointments)))
	m.HandleFunc("GET /contacts/{id}/notes/{noteId}", s.api("note", s.getNote))
	m.HandleFunc("GET /locations/{locationId}", s.apiScope("location", api.ScopeLocationsRO, s.getLocation))
	m.HandleFunc("GET /locations/{locationId}/customFields", s.apiScope("custom_fields", api.ScopeCustomFieldsRO, s.customFields))
	m.HandleFunc("POST /locations/{locationId}/tasks/search", s.apiScope("tasks_search", api.ScopeTasksRO, s.tasksSearch))
	m.HandleFunc("GET /calendars/{$}", s.apiScope("calendars", api.ScopeCalendarsRO, s.calendars))
	m.HandleFunc("GET /calendars/events", s.apiScope("events", api.ScopeEventsRO, s.events))
	s.writeRoutes(m) // writes.go
	m.HandleFunc("POST /oauth/token", s.oauth("token", s.token))
	m.HandleFunc("GET /oauth/authorize", s.oauth("authorize", s.authorize))
	m.HandleFunc("POST /oauth/revoke", s.oauth("revoke", s.revoke))
	m.HandleFunc("POST /oauth/locationToken", s.oauth("locationToken", s.locationToken))
	m.HandleFunc("POST /oauth/reconnect", s.reconnect)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.stats.update(func(st *Stats) { st.Requests++; st.ByKind["other"]++ })
		s.send(w, r, s.errReply(http.StatusNotFound, MsgNotFound), nil, plan{})
	})
	return m
}

type apiHandler func(r *http.Request, body []byte, g *grant) reply

// api wraps an endpoint with, in order: authentication (401), the rate
// limit of the token's location (429), fault injection, the Version header
// (400) and the scope check (401). The handler checks location access.
func (s *Server) api(kind string, h apiHandler) http.HandlerFunc {
	return s.apiScope(kind, api.ScopeContactsRO, h)
}

// apiScope is api with the scope the endpoint needs.
func (s *Server) apiScope(kind, scope string, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.OnRequest != nil {
			s.cfg.OnRequest(kind)
		}
		s.stats.update(func(st *Stats) { st.Requests++; st.ByKind[kind]++ })
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		}
		g, msg := s.authenticate(r)
		if g == nil {
			q := s.fullQuota()
			s.send(w, r, s.errReply(http.StatusUnauthorized, msg), &q, plan{})
			return
		}
		bucket := g.bucket()
		s.stats.update(func(st *Stats) { st.ByLocation[bucket]++ })
		q, ok, wait := s.take(bucket)
		if !ok {
			s.send(w, r, s.tooMany(wait), &q, plan{})
			return
		}
		p := s.decide(r.Method+" "+r.URL.RequestURI()+"\n"+string(body), bucket)
		rp := s.handle(r, body, g, scope, h, p)
		if p.kind == Fault429 && !s.cfg.Faults.Unexplained429 {
			q.remaining = 0
		}
		s.send(w, r, rp, &q, p)
	}
}

func (s *Server) handle(r *http.Request, body []byte, g *grant, scope string, h apiHandler, p plan) reply {
	switch p.kind {
	case Fault429:
		return s.tooMany(time.Second)
	case Fault5xx:
		return s.serverError(p)
	}
	version := api.VersionContacts
	if strings.HasPrefix(r.URL.Path, "/calendars/") {
		version = api.VersionCalendars
	}
	if r.Header.Get("Version") != version {
		return s.errReply(http.StatusBadRequest, MsgBadVersion)
	}
	if !slices.Contains(g.scopes, scope) {
		return s.errReply(http.StatusUnauthorized, MsgScope)
	}
	return h(r, body, g)
}

func (s *Server) tooMany(wait time.Duration) reply {
	rp := s.errReply(http.StatusTooManyRequests, MsgTooMany)
	if s.cfg.RetryAfter {
		rp.header = http.Header{"Retry-After": {strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))}}
	}
	return rp
}

func (s *Server) serverError(p plan) reply {
	if p.html {
		t := strconv.Itoa(p.status) + " " + http.StatusText(p.status)
		return reply{status: p.status, ctype: "text/html",
			body: []byte("<html>\r\n<head><title>" + t + "</title></head>\r\n<body>\r\n<center><h1>" + t + "</h1></center>\r\n</body>\r\n</html>\r\n")}
	}
	msg := "Internal server error"
	if p.status == http.StatusServiceUnavailable {
		msg = "Service temporarily unavailable"
	} else if p.status == http.StatusBadGateway {
		msg = "Bad gateway"
	}
	return s.errReply(p.status, msg)
}

// send writes rp with the rate-limit headers of q (when not nil), applying
// the slow, reset and truncate faults of p.
func (s *Server) send(w http.ResponseWriter, r *http.Request, rp reply, q *quota, p plan) {
	if p.kind != "" || p.slow {
		s.stats.update(func(st *Stats) {
			if p.kind != "" {
				st.Faults[p.kind]++
			}
			if p.slow {
				st.Faults[FaultSlow]++
			}
		})
	}
	if p.slow {
		if !ctxSleep(r.Context(), s.cfg.Faults.SlowDelay) {
			return
		}
	}
	status := rp.status
	if p.kind == FaultReset || p.kind == FaultTruncate {
		status = 0
	}
	s.stats.update(func(st *Stats) {
		st.ByStatus[status]++
		if status == http.StatusTooManyRequests {
			st.RateLimited++
		}
	})
	h := w.Header()
	for k, v := range rp.header {
		h[k] = v
	}
	if q != nil {
		q.set(h)
	}
	if rp.ctype != "" {
		h.Set("Content-Type", rp.ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(rp.body)))
	switch p.kind {
	case FaultReset:
		if hijackClose(w, rp.status, nil, true) {
			return
		}
		rp = s.serverError(plan{status: http.StatusBadGateway})
		h.Set("Content-Length", strconv.Itoa(len(rp.body)))
	case FaultTruncate:
		if hijackClose(w, rp.status, rp.body[:len(rp.body)/2], false) {
			return
		}
	}
	w.WriteHeader(rp.status)
	if r.Method != http.MethodHead {
		w.Write(rp.body)
	}
}

// hijackClose takes the connection over; with a head to write it sends the
// headers already set on w and part of the body, then closes (with a RST
// when rst). It reports false when w cannot be hijacked.
func hijackClose(w http.ResponseWriter, status int, partial []byte, rst bool) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	hdr := w.Header().Clone()
	conn, bw, err := hj.Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	if rst {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return true
	}
	writeHead(bw, status, hdr)
	bw.Write(partial)
	bw.Flush()
	return true
}

func writeHead(bw *bufio.ReadWriter, status int, h http.Header) {
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	h.Set("Connection", "close")
	h.Write(bw)
	bw.WriteString("\r\n")
}

// contactFor finds a live contact the token may read.
func (s *Server) contactFor(id string, g *grant) (*contact, *reply) {
	s.mu.RLock()
	c := s.byID[id]
	s.mu.RUnlock()
	if c != nil && c.c.LocationID != g.locationID {
		rp := s.errReply(http.StatusForbidden, MsgLocation)
		return nil, &rp
	}
	if c == nil || c.deleted {
		rp := s.errReply(http.StatusNotFound, MsgContactNotFound)
		return nil, &rp
	}
	return c, nil
}

func (s *Server) getContact(r *http.Request, _ []byte, g *grant) reply {
	c, bad := s.contactFor(r.PathValue("id"), g)
	if bad != nil {
		return *bad
	}
	j := c.getJSON(s)
	b := make([]byte, 0, len(j)+16)
	b = append(append(append(b, `{"contact":`...), j...), '}')
	return jsonReply(http.StatusOK, b)
}

func (s *Server) child(resource string) apiHandler {
	return func(r *http.Request, _ []byte, g *grant) reply {
		c, bad := s.contactFor(r.PathValue("id"), g)
		if bad != nil {
			return *bad
		}
		switch resource {
		case api.ResourceTasks:
			return jsonReply(http.StatusOK, c.tasksJSON())
		case api.ResourceNotes:
			return jsonReply(http.StatusOK, c.notesJSON())
		default:
			return jsonReply(http.StatusOK, c.eventsJSON())
		}
	}
}

// getLocation serves GET /locations/{locationId}.
func (s *Server) getLocation(r *http.Request, _ []byte, g *grant) reply {
	id := r.PathValue("locationId")
	l := s.location(id)
	if l == nil || id != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	return jsonReply(http.StatusOK, marshal(api.LocationResponse{Location: &api.Location{
		ID: l.id, CompanyID: s.cfg.CompanyID, Name: "Location " + l.id, Timezone: l.zoneName}}))
}

func (s *Server) getNote(r *http.Request, _ []byte, g *grant) reply {
	c, bad := s.contactFor(r.PathValue("id"), g)
	if bad != nil {
		return *bad
	}
	if b := c.noteJSON(r.PathValue("noteId")); b != nil {
		return jsonReply(http.StatusOK, b)
	}
	return s.errReply(http.StatusNotFound, MsgNoteNotFound)
}

// ctxSleep sleeps d and reports true, or false if ctx is done first.
func ctxSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
