package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/webhook"
)

func addN(t *testing.T, in *webhook.Inbox, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("e%03d", i)
		if err := in.Add(context.Background(), id, time.Now(), payload("ContactUpdate", id, time.Now(), "")); err != nil {
			t.Fatal(err)
		}
	}
}

// A torn tail (a crash mid-write, never acknowledged) is cut off on open;
// compaction keeps the unapplied events and the replay memory; a crash
// leftover of a compaction (a next generation never pointed at) is removed.
func TestInboxTornTailAndCompaction(t *testing.T) {
	dir := t.TempDir()
	in, err := webhook.OpenInbox(dir, webhook.InboxOptions{CompactBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.OpenInbox(dir, webhook.InboxOptions{}); err == nil {
		t.Fatal("a second opener got the inbox")
	}
	addN(t, in, 0, 10)
	b, _ := in.Unapplied(4)
	if err := in.MarkApplied(b, webhook.LastApply{Events: 4}); err != nil { // compacts (CompactBytes 1)
		t.Fatal(err)
	}
	if err := in.Add(context.Background(), "e001", time.Now(), payload("ContactUpdate", "e001", time.Now(), "")); err != webhook.ErrReplay {
		t.Fatalf("replay after compaction: %v", err)
	}
	addN(t, in, 10, 2)
	in.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "log-*"))
	if len(logs) != 1 || filepath.Base(logs[0]) != "log-1" {
		t.Fatalf("logs %v", logs)
	}
	f, _ := os.OpenFile(logs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5}) // torn record
	f.Close()
	os.WriteFile(filepath.Join(dir, "log-2"), []byte("leftover"), 0o600)
	st, err := webhook.ReadStats(dir)
	if err != nil || st.Depth != 8 || st.Last == nil || st.Last.Events != 4 {
		t.Fatalf("stats %+v %v", st, err)
	}
	in, err = webhook.OpenInbox(dir, webhook.InboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	b, _ = in.Unapplied(0)
	var ids []string
	for _, r := range b.Records {
		ev, _ := webhook.ParseEvent(r.Body)
		ids = append(ids, ev.WebhookID)
	}
	if fmt.Sprint(ids) != "[e004 e005 e006 e007 e008 e009 e010 e011]" {
		t.Fatalf("unapplied after reopen: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(dir, "log-2")); !os.IsNotExist(err) {
		t.Fatal("compaction leftover kept")
	}
	addN(t, in, 12, 1) // appends after the cut tail
	if b, _ := in.Unapplied(0); len(b.Records) != 9 {
		t.Fatalf("%d records", len(b.Records))
	}
}
