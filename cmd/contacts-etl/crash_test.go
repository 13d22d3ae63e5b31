package main

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

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
// SIGKILLs it at random points of its progress, read from its log (half of
// the kills inside a commit, slowed for them), changing the source now and then, and finally runs it to
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
		"--sweep-runs", "3", "--lookback", "1m", "--reconcile-every", "0", "--log-level", "debug", "--log-format", "text"}
	// run starts the binary; its stderr lines arrive on lines (closed when
	// the process has exited) and are kept in the buffer.
	run := func(delay string) (*exec.Cmd, *syncBuf, <-chan string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CONTACTS_ETL_TOKEN=pit-crash", load.DebugCommitDelayEnv+"="+delay)
		pipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var buf syncBuf
		lines := make(chan string, 64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(pipe)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				buf.Write(append(sc.Bytes(), '\n'))
				lines <- sc.Text()
			}
		}()
		return cmd, &buf, lines
	}
	// Kills are driven by what the process says, not by the clock: at the
	// k-th "commit start" (commits slowed to 300 ms then, so the kill lands
	// inside the transaction), or at the k-th log line of any kind.
	r := rand.New(rand.NewPCG(7, 7))
	killed, inCommit, completed, mutations := 0, 0, 0, 0
	for killed < kills {
		inside := r.IntN(2) == 0
		delay, want, k := "15ms", "", 1+r.IntN(40)
		if inside {
			delay, want, k = "300ms", `msg="commit start"`, 1+r.IntN(6)
		}
		cmd, stderr, lines := run(delay)
		seen, last := 0, ""
		for line := range lines {
			if want == "" || strings.Contains(line, want) {
				seen++
			}
			if seen == k {
				last = line
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for range lines { // drain until the process is gone
		}
		err := cmd.Wait()
		switch {
		case last == "" && err != nil:
			t.Fatalf("run failed: %v\n%s", err, tail(stderr.String()))
		case last == "":
			completed++
		default:
			killed++
			if strings.Contains(last, `msg="commit start"`) {
				inCommit++
			}
		}
		if (killed+completed)%5 == 0 {
			srv.Mutate(0.005, int64(killed))
			mutations++
		}
	}
	for range 3 { // a sweep cycle after the last change, no kills
		cmd, stderr, lines := run("0s")
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("final run: %v\n%s", err, tail(stderr.String()))
		}
	}
	t.Logf("%d kills (%d inside a commit), %d runs completed between kills, %d mutation rounds", killed, inCommit, completed, mutations)
	if inCommit < kills/4 {
		t.Errorf("only %d of %d kills landed inside a commit", inCommit, kills)
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
