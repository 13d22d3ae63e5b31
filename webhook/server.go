// Package webhook receives the Contacts API's signed webhooks and turns
// them into targeted fetches: Receiver verifies each POST and makes it
// durable in an Inbox (a folder beside the warehouse) before answering
// 2xx; Applier periodically turns the unapplied events into dirty contacts
// per location, reads exactly those through the pipeline (TargetsOnly,
// under the warehouse's run lock) and marks the events applied only after
// that commit. At-least-once apply plus the warehouse's idempotent merge
// give an exactly-once effect.
package webhook

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Defaults of ReceiverOptions.
const (
	DefaultMaxBody = 1 << 20
	DefaultMaxAge  = 5 * time.Minute
)

// ReceiverOptions configure a Receiver. Zero values take the defaults.
type ReceiverOptions struct {
	Keys    Keys          // DefaultKeys() when empty
	MaxBody int64         // larger bodies get 413
	MaxAge  time.Duration // events older (or further in the future) get 401
	Now     func() time.Time
	Log     *slog.Logger
}

// Counters of a Receiver, for status and tests.
type Counters struct {
	Accepted, Unknown, BadSignature, Stale, Replayed, TooLarge, Malformed, Limited, Failed int64
}

// Receiver is the webhook endpoint: POST (any path but the health ones)
// takes an event; GET /healthz answers 200 while the process serves;
// GET /readyz 200 only while the inbox can take events.
//
// Answers: 200 durable (and unknown types, which are kept and ignored);
// 401 bad signature or stale timestamp; 409 replayed webhookId; 400
// malformed; 413 too large; 429 inbox full or apply behind (the vendor
// retries only on 429); 503 inbox failing.
type Receiver struct {
	in  *Inbox
	opt ReceiverOptions
	c   struct {
		accepted, unknown, badSig, stale, replayed, tooLarge, malformed, limited, failed atomic.Int64
	}
}

// NewReceiver returns a receiver that writes into in.
func NewReceiver(in *Inbox, opt ReceiverOptions) *Receiver {
	if len(opt.Keys.Ed25519) == 0 && len(opt.Keys.RSA) == 0 {
		opt.Keys = DefaultKeys()
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = DefaultMaxBody
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = DefaultMaxAge
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{in: in, opt: opt}
}

// Counters returns the counts so far.
func (r *Receiver) Counters() Counters {
	return Counters{Accepted: r.c.accepted.Load(), Unknown: r.c.unknown.Load(), BadSignature: r.c.badSig.Load(),
		Stale: r.c.stale.Load(), Replayed: r.c.replayed.Load(), TooLarge: r.c.tooLarge.Load(),
		Malformed: r.c.malformed.Load(), Limited: r.c.limited.Load(), Failed: r.c.failed.Load()}
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case "/healthz":
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok\n")
		return
	case "/readyz":
		if err := r.in.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
		return
	}
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opt.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			r.c.tooLarge.Add(1)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if err := r.opt.Keys.Verify(req.Header, body); err != nil {
		r.c.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	ev, err := ParseEvent(body)
	if err != nil || ev.WebhookID == "" || ev.Timestamp.IsZero() {
		r.c.malformed.Add(1)
		http.Error(w, "malformed event (type, webhookId and timestamp are required)", http.StatusBadRequest)
		return
	}
	if age := r.opt.Now().Sub(ev.Timestamp); age > r.opt.MaxAge || age < -r.opt.MaxAge {
		r.c.stale.Add(1)
		http.Error(w, "stale timestamp", http.StatusUnauthorized)
		return
	}
	switch err := r.in.Add(req.Context(), ev.WebhookID, ev.Timestamp, body); {
	case err == nil:
		r.c.accepted.Add(1)
		if !Known(ev.Type) {
			r.c.unknown.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, ErrReplay):
		r.c.replayed.Add(1)
		http.Error(w, "replayed webhookId", http.StatusConflict)
	case errors.Is(err, ErrFull), errors.Is(err, ErrBehind):
		r.c.limited.Add(1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
	default:
		r.c.failed.Add(1)
		r.opt.Log.Error("webhook not stored", "type", ev.Type, "err", err)
		http.Error(w, "not stored", http.StatusServiceUnavailable)
	}
}
