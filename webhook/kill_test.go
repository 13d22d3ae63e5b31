package webhook_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// TestServeChild is the serve process of TestSIGKILLLosesNothing: it runs
// only when the parent starts it, serves until killed and never applies.
func TestServeChild(t *testing.T) {
	dir, key := os.Getenv("WEBHOOK_CHILD_INBOX"), os.Getenv("WEBHOOK_CHILD_KEY")
	if dir == "" {
		t.Skip("child process only")
	}
	in, err := webhook.OpenInbox(dir, webhook.InboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := webhook.ParseKeys([]string{key})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	s := &webhook.Service{Receiver: webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: keys}),
		Applier: &webhook.Applier{Inbox: in}, ApplyEvery: time.Hour}
	_ = s.Serve(context.Background(), ln)
}

// A serve process killed with SIGKILL while events stream in loses none it
// acknowledged: after a restart every one is in the inbox, a replay of
// them is refused, one apply brings their contacts to the truth, and a
// second apply has nothing to do (exactly once).
func TestSIGKILLLosesNothing(t *testing.T) {
	w := newWorld(t, 200)
	w.run(false)
	dir := webhook.InboxDir(w.path)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.v")
	cmd.Env = append(os.Environ(), "WEBHOOK_CHILD_INBOX="+dir, "WEBHOOK_CHILD_KEY="+w.pubB64)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "LISTEN %s", &addr); err == nil {
			break
		}
	}
	if addr == "" {
		t.Fatal("child did not listen")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	snd := sim.NewWebhooks(w.srv, sim.WebhookConfig{URL: "http://" + addr + "/", Key: w.priv, Seed: 3})
	evs := snd.MutateWithWebhooks(0.5, 5)
	// Four senders; the child is killed as soon as half the events are
	// acknowledged, while the rest are in flight.
	var mu sync.Mutex
	acked := map[string]sim.WebhookEvent{}
	var n atomic.Int64
	half := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	next := make(chan sim.WebhookEvent)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range next {
				code, err := snd.Send(context.Background(), ev.Body, snd.Sign(ev.Body))
				if err == nil && code == 200 {
					mu.Lock()
					acked[ev.WebhookID] = ev
					mu.Unlock()
					if n.Add(1) >= int64(len(evs)/2) {
						once.Do(func() { close(half) })
					}
				}
			}
		}()
	}
	killed := make(chan struct{})
	go func() {
		<-half
		_ = cmd.Process.Signal(syscall.SIGKILL)
		close(killed)
	}()
	for _, ev := range evs {
		select {
		case next <- ev:
			continue
		case <-killed:
		}
		break
	}
	close(next)
	wg.Wait()
	<-killed
	_ = cmd.Wait()
	t.Logf("events %d, acknowledged before the kill %d", len(evs), len(acked))

	in, err := webhook.OpenInbox(dir, webhook.InboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	b, err := in.Unapplied(0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range b.Records {
		ev, err := webhook.ParseEvent(r.Body)
		if err != nil {
			t.Fatalf("record at %d: %v", r.Offset, err)
		}
		seen[ev.WebhookID]++
	}
	arrived := map[string]bool{}
	for id, ev := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s is in the inbox %d times", id, seen[id])
		}
		arrived[ev.ContactID] = true
	}
	// Replays are still recognised after the restart.
	_, url := w.receiver(in)
	for _, ev := range acked {
		if code := post(t, url, ev.Body, snd.Sign(ev.Body)); code != 409 {
			t.Fatalf("replay after restart: %d", code)
		}
		break
	}
	ap := &webhook.Applier{Inbox: in, Apply: w.apply().Apply}
	last, err := ap.Once(context.Background())
	if err != nil || last.Events != len(b.Records) {
		t.Fatalf("apply %+v %v", last, err)
	}
	if bad := w.checkContacts(arrived, true); bad > 0 {
		t.Fatalf("%d differences", bad)
	}
	if again, err := ap.Once(context.Background()); err != nil || again.Events != 0 {
		t.Fatalf("second apply %+v %v", again, err)
	}
	st, err := webhook.Status(w.path)
	if err != nil || st.Depth != 0 || st.Last == nil || st.Last.Events != len(b.Records) {
		t.Fatalf("status %+v %v", st, err)
	}
}
