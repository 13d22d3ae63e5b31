package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/internal/truth"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
)

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// binary builds the real contacts-etl binary once per test process.
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "contacts-etl-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "contacts-etl")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build: %v\n%s", built.err, built.out)
	}
	return built.path
}

// TestCrashKillsLoseNothing runs the real binary against the simulator and
// SIGKILLs it at random moments (commits are slowed so that some kills land
// inside one), changing the source now and then, and finally runs it to
// completion for a sweep cycle: the warehouse must equal the ground truth,
// with no key twice. SOAK=1 runs a longer campaign.
func TestCrashKillsLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary")
	}
	contacts, kills := 3000, 32
	if os.Getenv("SOAK") != "" {
		contacts, kills = 20000, 200
	}
	bin := binary(t)
	srv, base := startSim(t, sim.Config{Seed: 21, Contacts: contacts, Locations: 1,
		StaticTokens: map[string]sim.StaticToken{"pit-crash": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO}}}})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	args := []string{"run", "--source", "sim", "--base-url", base, "--locations", "loc-0001", "--warehouse", path,
		"--page-limit", "100", "--commit-rows", "300", "--batch-rows", "200", "--rate-max", "1000000", "--rate-interval", "1s",
		"--sweep-runs", "3", "--lookback", "1m", "--reconcile-every", "0", "--log-level", "debug"}
	run := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CONTACTS_ETL_TOKEN=pit-crash", load.DebugCommitDelayEnv+"=15ms")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	r := rand.New(rand.NewPCG(7, 7))
	killed, inCommit, completed, mutations := 0, 0, 0, 0
	for killed < kills {
		cmd, stderr := run()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run failed: %v\n%s", err, tail(stderr.String()))
			}
			completed++
		case <-time.After(time.Duration(20+r.IntN(900)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
			if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); strings.Contains(lines[len(lines)-1], `msg="commit start"`) {
				inCommit++
			}
		}
		if (killed+completed)%5 == 0 {
			srv.Mutate(0.005, int64(killed))
			mutations++
		}
	}
	for range 3 { // a sweep cycle after the last change, no kills
		cmd, stderr := run()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("final run: %v\n%s", err, tail(stderr.String()))
		}
	}
	t.Logf("%d kills (%d inside a commit), %d runs completed between kills, %d mutation rounds", killed, inCommit, completed, mutations)
	if inCommit == 0 {
		t.Errorf("no kill landed inside a commit")
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
