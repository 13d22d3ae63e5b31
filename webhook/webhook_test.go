package webhook_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// With 10% of events dropped, 5% duplicated and all reordered, one apply
// makes the warehouse equal the truth for every contact whose event
// arrived; contacts whose events were lost stay stale until the next
// scheduled (full) run, after which the whole warehouse equals the truth.
func TestLossyWebhooksOneApply(t *testing.T) {
	w := newWorld(t, 100)
	w.run(false)
	in, err := webhook.OpenInbox(webhook.InboxDir(w.path), webhook.InboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rcv, url := w.receiver(in)
	snd := sim.NewWebhooks(w.srv, sim.WebhookConfig{URL: url, Key: w.priv, Drop: 0.10, Duplicate: 0.05, Reorder: true,
		TaskNoContact: 0.25, Seed: 7})
	evs := snd.MutateWithWebhooks(0.6, 99)
	rep := snd.Flush(context.Background())
	t.Logf("events %d, sent %d, dropped %d, duplicated %d, status %v", len(evs), rep.Sent, rep.Dropped, rep.Duplicated, rep.Status)
	if rep.Dropped == 0 || rep.Duplicated == 0 || rep.Status[http.StatusConflict] != rep.Duplicated || rep.Status[http.StatusOK] != len(rep.Acked) {
		t.Fatalf("want drops, duplicates answered 409 and the rest 200: %+v", rep.Status)
	}
	arrived, lost := map[string]bool{}, map[string]bool{}
	unresolved := 0
	for _, ev := range rep.Acked {
		if !bytes.Contains(ev.Body, []byte(`"contactId"`)) && ev.Type == "TaskCreate" {
			unresolved++
			continue
		}
		arrived[ev.ContactID] = true
	}
	for _, ev := range evs {
		if !rep.AckedIDs[ev.WebhookID] && !arrived[ev.ContactID] {
			lost[ev.ContactID] = true
		}
	}
	if got := in.Stats().Depth; got != len(rep.Acked) {
		t.Fatalf("inbox depth %d, want %d acknowledged", got, len(rep.Acked))
	}
	last, err := (&webhook.Applier{Inbox: in, Apply: w.apply().Apply}).Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apply: %+v; counters %+v", last, rcv.Counters())
	if last.Events != len(rep.Acked) || last.Unresolved != unresolved || last.Contacts != len(arrived) || last.RunID == "" {
		t.Fatalf("apply %+v, want %d events, %d unresolved, %d contacts", last, len(rep.Acked), unresolved, len(arrived))
	}
	if bad := w.checkContacts(arrived, true); bad > 0 {
		t.Fatalf("%d differences for contacts whose event arrived", bad)
	}
	if w.checkContacts(lost, false) == 0 {
		t.Fatalf("contacts whose events were lost (%d) already match: the test proves nothing", len(lost))
	}
	if st := in.Stats(); st.Depth != 0 || st.Last == nil || st.Last.Events != len(rep.Acked) {
		t.Fatalf("after apply: %+v", st)
	}
	again, err := (&webhook.Applier{Inbox: in, Apply: w.apply().Apply}).Once(context.Background())
	if err != nil || again.Events != 0 {
		t.Fatalf("second apply %+v %v, want nothing", again, err)
	}
	w.run(true)
	truth.CompareWarehouse(t, w.srv, w.path, source, w.srv.Locations())
}

func post(t *testing.T, url string, body []byte, h http.Header) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func payload(typ, id string, ts time.Time, extra string) []byte {
	return fmt.Appendf(nil, `{"type":%q,"locationId":"loc-0001","id":"c1","contactId":"c1","webhookId":%q,"timestamp":%q%s}`,
		typ, id, ts.UTC().Format(time.RFC3339), extra)
}

// Forged, unsigned, stale, replayed, oversized and malformed events are
// refused with the right status and never reach the inbox; the legacy RSA
// signature and unknown types are accepted (unknown: kept, counted, and
// ignored by the apply).
func TestRefusals(t *testing.T) {
	w := newWorld(t, 10)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	keys, err := webhook.ParseKeys([]string{w.pubB64, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	in, err := webhook.OpenInbox(t.TempDir(), webhook.InboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rcv := webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: keys, MaxBody: 4096})
	hs := httptestServer(t, rcv)
	good := sim.NewWebhooks(w.srv, sim.WebhookConfig{Key: w.priv})
	legacy := sim.NewWebhooks(w.srv, sim.WebhookConfig{RSAKey: rk, LegacyOnly: true})
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forger := sim.NewWebhooks(w.srv, sim.WebhookConfig{Key: otherKey})
	now := time.Now()
	ok1 := payload("ContactUpdate", "ok-1", now, "")
	tampered := bytes.Replace(ok1, []byte(`"c1"`), []byte(`"c2"`), 1)
	cases := []struct {
		name string
		body []byte
		h    http.Header
		want int
	}{
		{"good", ok1, good.Sign(ok1), 200},
		{"replayed", ok1, good.Sign(ok1), 409},
		{"tampered", tampered, good.Sign(ok1), 401},
		{"forged", payload("ContactUpdate", "forged", now, ""), forger.Sign(payload("ContactUpdate", "forged", now, "")), 401},
		{"unsigned", payload("ContactUpdate", "nosig", now, ""), http.Header{}, 401},
		{"garbage signature", payload("ContactUpdate", "g", now, ""), http.Header{"X-Ghl-Signature": {"!!"}}, 401},
		{"stale", payload("ContactUpdate", "stale", now.Add(-6*time.Minute), ""), good.Sign(payload("ContactUpdate", "stale", now.Add(-6*time.Minute), "")), 401},
		{"future", payload("ContactUpdate", "future", now.Add(6*time.Minute), ""), good.Sign(payload("ContactUpdate", "future", now.Add(6*time.Minute), "")), 401},
		{"too large", payload("ContactUpdate", "big", now, `,"pad":"`+strings.Repeat("x", 5000)+`"`), nil, 413},
		{"no webhookId", []byte(`{"type":"ContactUpdate","timestamp":"` + now.UTC().Format(time.RFC3339) + `"}`), nil, 400},
		{"legacy RSA", payload("NoteCreate", "legacy-1", now, ""), legacy.Sign(payload("NoteCreate", "legacy-1", now, "")), 200},
		{"unknown type", payload("OpportunityCreate", "unknown-1", now, ""), good.Sign(payload("OpportunityCreate", "unknown-1", now, "")), 200},
	}
	for _, c := range cases {
		h := c.h
		if h == nil {
			h = good.Sign(c.body)
		}
		if got := post(t, hs+"/hook", c.body, h); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	b, err := in.Unapplied(0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range b.Records {
		ev, _ := webhook.ParseEvent(r.Body)
		ids = append(ids, ev.WebhookID)
	}
	if fmt.Sprint(ids) != "[ok-1 legacy-1 unknown-1]" {
		t.Fatalf("inbox holds %v, want only the accepted events", ids)
	}
	c := rcv.Counters()
	if c.Accepted != 3 || c.Unknown != 1 || c.Replayed != 1 || c.BadSignature != 4 || c.Stale != 2 || c.TooLarge != 1 || c.Malformed != 1 {
		t.Fatalf("counters %+v", c)
	}
	var targets map[string][]string
	last, err := (&webhook.Applier{Inbox: in, Apply: func(_ context.Context, tg map[string][]string) (string, error) {
		targets = tg
		return "r1", nil
	}}).Once(context.Background())
	if err != nil || last.Ignored != 1 || fmt.Sprint(targets) != "map[loc-0001:[c1]]" {
		t.Fatalf("apply %+v %v targets %v", last, err, targets)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(hs + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	// The vendor's published keys parse.
	if k := webhook.DefaultKeys(); len(k.Ed25519) != 1 || len(k.RSA) != 1 {
		t.Fatalf("default keys %+v", k)
	}
}

// Payload quirks: appointment events nest the object; TaskCreate can lack
// contactId (unresolved: left to the scheduled run); timestamps may be
// epoch ms.
func TestParseEventQuirks(t *testing.T) {
	ev, err := webhook.ParseEvent([]byte(`{"type":"AppointmentCreate","locationId":"L","webhookId":"w","timestamp":1700000000000,"appointment":{"id":"a1","contactId":"c9"}}`))
	if err != nil || ev.ID != "a1" || ev.ContactID != "c9" || ev.Timestamp.UnixMilli() != 1700000000000 {
		t.Fatalf("%+v %v", ev, err)
	}
	tg, unresolved, ignored := webhook.Dirty([]webhook.Event{ev, {Type: "TaskCreate", LocationID: "L", ID: "t1"},
		{Type: "ContactDelete", LocationID: "L", ContactID: "c9"}, {Type: "Nope", LocationID: "L", ContactID: "x"}}, nil)
	if fmt.Sprint(tg) != "map[L:[c9]]" || unresolved != 1 || ignored != 1 {
		t.Fatalf("%v %d %d", tg, unresolved, ignored)
	}
	if _, err := webhook.ParseEvent([]byte(`[1]`)); err == nil {
		t.Fatal("a JSON array parsed as an event")
	}
}

// A burst beyond the inbox's capacity gets 429s, and every event answered
// 2xx is in the inbox after it is closed and opened again.
func TestBurstBeyondCapacity(t *testing.T) {
	w := newWorld(t, 10)
	dir := t.TempDir()
	in, err := webhook.OpenInbox(dir, webhook.InboxOptions{MaxPending: 25})
	if err != nil {
		t.Fatal(err)
	}
	_, url := w.receiver(in)
	snd := sim.NewWebhooks(w.srv, sim.WebhookConfig{URL: url, Key: w.priv})
	const n = 200
	var mu sync.Mutex
	acked := map[string]bool{}
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("burst-%03d", i)
			body := payload("ContactUpdate", id, time.Now(), "")
			code, err := snd.Send(context.Background(), body, snd.Sign(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				code = 0
			}
			codes[code]++
			if code/100 == 2 {
				acked[id] = true
			}
		}()
	}
	wg.Wait()
	if codes[200] != 25 || codes[429] != n-25 {
		t.Fatalf("status counts %v, want 25×200 and the rest 429", codes)
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz on a full inbox: %v %v", resp, err)
	}
	resp.Body.Close()
	in.Close()
	in2, err := webhook.OpenInbox(dir, webhook.InboxOptions{MaxPending: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer in2.Close()
	b, _ := in2.Unapplied(0)
	got := map[string]bool{}
	for _, r := range b.Records {
		ev, _ := webhook.ParseEvent(r.Body)
		got[ev.WebhookID] = true
	}
	if len(got) != len(b.Records) || fmt.Sprint(got) != fmt.Sprint(acked) {
		t.Fatalf("inbox after reopen holds %d (%d distinct), acknowledged %d", len(b.Records), len(got), len(acked))
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

var _ = json.Marshal
