package webhook_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// BenchmarkAckDurable measures events per second the receiver
// acknowledges durably (verified, fsynced in the inbox) over loopback
// HTTP, with 32 concurrent senders (group commit shares the fsyncs).
func BenchmarkAckDurable(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keys, _ := webhook.ParseKeys([]string{base64.StdEncoding.EncodeToString(der)})
	in, err := webhook.OpenInbox(b.TempDir(), webhook.InboxOptions{MaxPending: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	hs := httptest.NewServer(webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: keys}))
	defer hs.Close()
	snd := sim.NewWebhooks(sim.New(sim.Config{Locations: 1, Contacts: 1}), sim.WebhookConfig{URL: hs.URL, Key: priv,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}})
	var seq atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS senders
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := payload("ContactUpdate", fmt.Sprintf("bench-%d", seq.Add(1)), time.Now(), "")
			if code, err := snd.Send(context.Background(), body, snd.Sign(body)); err != nil || code != 200 {
				b.Errorf("status %d %v", code, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
