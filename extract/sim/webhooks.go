package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// WebhookConfig configures the simulator's webhook sender.
type WebhookConfig struct {
	URL string // the receiver; empty: events are queued but never sent
	// Key signs X-GHL-Signature (Ed25519 over the raw body). RSAKey, if
	// set, signs the legacy X-WH-Signature (RSA-SHA256, PKCS #1 v1.5);
	// LegacyOnly sends only that one.
	Key        ed25519.PrivateKey
	RSAKey     *rsa.PrivateKey
	LegacyOnly bool
	// Drop and Duplicate are the fractions of events never sent and sent
	// twice; Reorder shuffles each Flush's events. Delay holds each
	// delivery back that long (0: none).
	Drop, Duplicate float64
	Reorder         bool
	Delay           time.Duration
	// TaskNoContact is the fraction of TaskCreate events sent without
	// contactId, as the real API has been seen to.
	TaskNoContact float64
	Seed          int64
	Client        *http.Client
}

// RegisterFlags adds the sender's flags (the key comes from the test or
// the simulate command, not from a flag).
func (c *WebhookConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "webhook-url", c.URL, "send signed webhooks for mutations to this receiver URL")
	fs.Float64Var(&c.Drop, "webhook-drop", c.Drop, "fraction of webhooks dropped")
	fs.Float64Var(&c.Duplicate, "webhook-duplicate", c.Duplicate, "fraction of webhooks sent twice")
	fs.BoolVar(&c.Reorder, "webhook-reorder", c.Reorder, "shuffle webhooks before sending")
	fs.DurationVar(&c.Delay, "webhook-delay", c.Delay, "delay before each webhook")
}

// WebhookEvent is one event the simulator emitted.
type WebhookEvent struct {
	Type       string
	WebhookID  string
	LocationID string
	ContactID  string // the contact it concerns, even if the payload omits it
	Body       []byte // the signed payload
}

// WebhookReport is what a Flush did.
type WebhookReport struct {
	Sent, Dropped, Duplicated int
	Status                    map[int]int     // answers by status code (0: transport error)
	Acked                     []WebhookEvent  // answered 2xx at least once
	AckedIDs                  map[string]bool // webhookIds answered 2xx
	Retry                     int             // answered 429: queued again for the next Flush
}

// Webhooks emits signed webhooks for mutations of a Server.
type Webhooks struct {
	s   *Server
	cfg WebhookConfig

	mu    sync.Mutex
	r     *mrand.Rand
	queue []WebhookEvent
	n     int
}

// NewWebhooks returns a sender for s.
func NewWebhooks(s *Server, cfg WebhookConfig) *Webhooks {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Webhooks{s: s, cfg: cfg, r: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x7765626b))}
}

// Emit queues an event of typ about contact (and object id) in loc, with
// the real payload shapes: flat JSON with type, locationId, id; contact
// events' id is the contact; appointment events nest the object under
// "appointment"; TaskCreate may lack contactId.
func (w *Webhooks) Emit(typ, loc, contactID, objectID string) WebhookEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	id := fmt.Sprintf("wh-%d-%06d", w.cfg.Seed, w.n)
	p := map[string]any{"type": typ, "locationId": loc, "webhookId": id,
		"timestamp": w.s.cfg.Now().UTC().Format(time.RFC3339Nano)}
	switch {
	case strings.HasPrefix(typ, "Contact"):
		p["id"] = contactID
	case strings.HasPrefix(typ, "Appointment"):
		p["appointment"] = map[string]any{"id": objectID, "contactId": contactID, "calendarId": "cal0Pq8Rs7Tu6Vw5Xy4Za",
			"appointmentStatus": "booked", "title": "Added call"}
	default:
		p["id"] = objectID
		if !(typ == "TaskCreate" && w.r.Float64() < w.cfg.TaskNoContact) {
			p["contactId"] = contactID
		}
		if strings.HasPrefix(typ, "Task") {
			p["title"] = "Follow up"
		} else {
			p["body"] = "Added note " + objectID
		}
	}
	body, _ := json.Marshal(p)
	ev := WebhookEvent{Type: typ, WebhookID: id, LocationID: loc, ContactID: contactID, Body: body}
	w.queue = append(w.queue, ev)
	return ev
}

// Sign returns the signature headers of body.
func (w *Webhooks) Sign(body []byte) http.Header {
	h := http.Header{}
	if w.cfg.Key != nil && !w.cfg.LegacyOnly {
		h.Set("X-GHL-Signature", base64.StdEncoding.EncodeToString(ed25519.Sign(w.cfg.Key, body)))
	}
	if w.cfg.RSAKey != nil {
		sum := sha256.Sum256(body)
		if sig, err := rsa.SignPKCS1v15(rand.Reader, w.cfg.RSAKey, crypto.SHA256, sum[:]); err == nil {
			h.Set("X-WH-Signature", base64.StdEncoding.EncodeToString(sig))
		}
	}
	return h
}

// Send posts one body with headers to the receiver and returns the status.
func (w *Webhooks) Send(ctx context.Context, body []byte, h http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Flush sends the queued events with the configured drops, duplicates,
// reordering and delay, sequentially. Events answered 429 are queued
// again (the vendor retries only those); others are done.
func (w *Webhooks) Flush(ctx context.Context) WebhookReport {
	w.mu.Lock()
	evs := w.queue
	w.queue = nil
	var plan []WebhookEvent
	rep := WebhookReport{Status: map[int]int{}, AckedIDs: map[string]bool{}}
	for _, ev := range evs {
		if w.r.Float64() < w.cfg.Drop {
			rep.Dropped++
			continue
		}
		plan = append(plan, ev)
		if w.r.Float64() < w.cfg.Duplicate {
			rep.Duplicated++
			plan = append(plan, ev)
		}
	}
	if w.cfg.Reorder {
		w.r.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	}
	w.mu.Unlock()
	var retry []WebhookEvent
	for _, ev := range plan {
		if w.cfg.Delay > 0 {
			t := time.NewTimer(w.cfg.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		code, err := w.Send(ctx, ev.Body, w.Sign(ev.Body))
		if err != nil {
			code = 0
		}
		rep.Sent++
		rep.Status[code]++
		switch {
		case code >= 200 && code < 300:
			if !rep.AckedIDs[ev.WebhookID] {
				rep.AckedIDs[ev.WebhookID] = true
				rep.Acked = append(rep.Acked, ev)
			}
		case code == http.StatusTooManyRequests:
			if !slices.ContainsFunc(retry, func(x WebhookEvent) bool { return x.WebhookID == ev.WebhookID }) {
				retry = append(retry, ev)
			}
		}
	}
	rep.Retry = len(retry)
	w.mu.Lock()
	w.queue = append(retry, w.queue...)
	w.mu.Unlock()
	return rep
}

// MutateWithWebhooks changes about frac of the live contacts, chosen by
// seed, and emits the webhook of each change: 30% ContactUpdate (a third
// of those ContactTagUpdate), 20% TaskCreate (the task bumps dateUpdated),
// 25% NoteCreate (no bump: only the webhook reveals it), 10%
// AppointmentCreate, 15% ContactDelete; plus frac/10 new contacts
// (ContactCreate). It returns the events in emission order.
func (w *Webhooks) MutateWithWebhooks(frac float64, seed int64) []WebhookEvent {
	s := w.s
	s.mu.RLock()
	ids := make([]string, 0, len(s.byID))
	locOf := map[string]string{}
	for id, c := range s.byID {
		if !c.deleted {
			ids = append(ids, id)
			locOf[id] = c.loc.id
		}
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	r := mrand.New(mrand.NewPCG(uint64(seed), saltMutate^0x5eb))
	n := int(frac*float64(len(ids)) + 0.5)
	var out []WebhookEvent
	for _, i := range r.Perm(len(ids))[:min(n, len(ids))] {
		id, loc := ids[i], locOf[ids[i]]
		switch p := r.Float64(); {
		case p < 0.30:
			rev := r.IntN(1000)
			tag := r.Float64() < 1.0/3
			s.UpdateContact(id, func(c *api.Contact) {
				c.LastName = strings.TrimSpace(c.LastName + " w" + strconv.Itoa(rev))
				c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
				if tag {
					c.Tags = append(c.Tags, "hooked")
				}
			})
			typ := "ContactUpdate"
			if tag {
				typ = "ContactTagUpdate"
			}
			out = append(out, w.Emit(typ, loc, id, id))
		case p < 0.50:
			out = append(out, w.Emit("TaskCreate", loc, id, s.AddTask(id)))
		case p < 0.75:
			out = append(out, w.Emit("NoteCreate", loc, id, s.AddNote(id)))
		case p < 0.85:
			out = append(out, w.Emit("AppointmentCreate", loc, id, s.AddEvent(id)))
		default:
			s.DeleteContact(id)
			out = append(out, w.Emit("ContactDelete", loc, id, id))
		}
	}
	locs := s.Locations()
	for i := range int(frac*float64(len(ids))/10 + 0.5) {
		loc := locs[i%len(locs)]
		id := s.AddContact(loc)
		out = append(out, w.Emit("ContactCreate", loc, id, id))
	}
	return out
}
