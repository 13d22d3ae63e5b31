package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// TestServeEndToEnd drives the real binary: a run exports the simulator,
// serve receives the simulator's signed webhooks (20% dropped, some
// duplicated, reordered) and applies them on its timer; the contacts whose
// events arrived then equal the truth while those whose events were lost
// do not all; after SIGTERM a scheduled run (drainInbox, then the run with
// a sweep every run) makes the whole warehouse equal the truth.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	srv, base := startSim(t, sim.Config{Seed: 31, Contacts: 120, Locations: 1,
		StaticTokens: map[string]sim.StaticToken{"pit-serve": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO}}}})
	dir := t.TempDir()
	path := filepath.Join(dir, "w.duckdb")
	common := []string{"--source", "sim", "--base-url", base, "--locations", "loc-0001", "--warehouse", path,
		"--rate-max", "1000000", "--rate-interval", "1s"}
	env := append(os.Environ(), "CONTACTS_ETL_TOKEN=pit-serve")
	runOnce := func(extra ...string) {
		t.Helper()
		cmd := exec.Command(bin, append(append([]string{"run"}, common...), extra...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
	}
	runOnce("--sweep-runs", "1")

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keyFile := filepath.Join(dir, "webhook.pub")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(der)), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for serve
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	serve := exec.Command(bin, append(append([]string{"serve"}, common...),
		"--listen", addr, "--apply-every", "1s", "--webhook-keys", keyFile)...)
	serve.Env = env
	stdout, _ := serve.StdoutPipe()
	stderr, _ := serve.StderrPipe()
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = serve.Process.Kill(); _ = serve.Wait() })
	// Readiness: serve prints its address once the listener is bound.
	outLines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outLines <- sc.Text()
		}
		close(outLines)
	}()
	applied := make(chan string, 64) // "webhook apply" log lines
	var logs syncBuf
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(&logs, sc.Text())
			if strings.Contains(sc.Text(), "webhook apply") {
				applied <- sc.Text()
			}
		}
		close(applied)
	}()
	if l, ok := <-outLines; !ok || !strings.Contains(l, "receiving webhooks on http://"+addr) {
		<-applied // stderr read to its end
		t.Fatalf("serve did not start: %q\n%s", l, logs.String())
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d", resp.StatusCode)
	}

	snd := sim.NewWebhooks(srv, sim.WebhookConfig{URL: "http://" + addr + "/hooks", Key: priv, Drop: 0.2, Duplicate: 0.05,
		Reorder: true, Seed: 4})
	evs := snd.MutateWithWebhooks(0.5, 8)
	rep := snd.Flush(context.Background())
	t.Logf("events %d, acked %d, dropped %d, status %v", len(evs), len(rep.Acked), rep.Dropped, rep.Status)
	if rep.Dropped == 0 || len(rep.Acked) == 0 || rep.Status[http.StatusOK] != len(rep.Acked) {
		t.Fatalf("want drops and the rest acknowledged: %+v", rep.Status)
	}
	arrived, lost := map[string]bool{}, map[string]bool{}
	for _, ev := range rep.Acked {
		arrived[ev.ContactID] = true
	}
	for _, ev := range evs {
		if !arrived[ev.ContactID] {
			lost[ev.ContactID] = true
		}
	}

	// Wait for serve's applies (its log) until the inbox on disk says all
	// acknowledged events are applied.
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for {
		st, err := webhook.Status(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Depth == 0 && st.Last != nil {
			break
		}
		select {
		case _, ok := <-applied:
			if !ok {
				t.Fatal("serve exited before applying")
			}
		case <-timeout.C:
			t.Fatalf("events not applied: %+v", st)
		}
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range outLines { // "stopped: ..."; closed when serve exits
	}
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}

	// The contacts named by arrived events equal the truth; some lost ones differ.
	want := truth.Tables(t, srv, srv.Locations())["contacts"]
	deleted := map[string]bool{}
	for _, ct := range srv.Truth("loc-0001") {
		if ct.Deleted {
			deleted[ct.Contact.ID] = true
		}
	}
	db := truth.OpenRO(t, path)
	got := truth.ReadTable(t, db, "contacts", "sim")
	db.Close()
	differs := func(id string) string {
		g, ok := got[id]
		switch {
		case deleted[id]:
			if !ok || g["_deleted_at"] == nil {
				return "not soft-deleted"
			}
			return ""
		case !ok:
			return "missing"
		}
		for col, wv := range want[id] {
			if !truth.SameValue(col, wv, g[col]) {
				return fmt.Sprintf("%s = %#v, want %#v", col, g[col], wv)
			}
		}
		return ""
	}
	for id := range arrived {
		if d := differs(id); d != "" {
			t.Errorf("contact %s (event arrived): %s", id, d)
		}
	}
	stale := 0
	for id := range lost {
		if differs(id) != "" {
			stale++
		}
	}
	if stale == 0 {
		t.Fatalf("none of the %d contacts whose events were lost differ: the test proves nothing", len(lost))
	}
	t.Logf("%d contacts applied from webhooks, %d of %d with lost events stale", len(arrived), stale, len(lost))

	// The next scheduled run brings all.
	runOnce("--sweep-runs", "1")
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
}

// serve takes --log-format like run; a bad one is a usage error before it
// listens or opens anything.
func TestServeLogFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), []string{"serve", "--auth", "static", "--source", "sim",
		"--base-url", "http://127.0.0.1:1", "--locations", "loc-0001", "--warehouse", path,
		"--listen", "127.0.0.1:0", "--log-format", "xml"}, &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "log format") {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a usage error created the warehouse")
	}
}
