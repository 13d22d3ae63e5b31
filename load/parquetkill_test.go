package load

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestParquetKillHelper is the child of TestParquetSIGKILL: it recovers
// the sink in PQKILL_DIR, then commits contactsCommit(i) for i from the
// manifest's Seq on, printing each publish step, until it is killed.
func TestParquetKillHelper(t *testing.T) {
	dir := os.Getenv("PQKILL_DIR")
	if dir == "" {
		t.Skip("child process of TestParquetSIGKILL only")
	}
	ctx := context.Background()
	s, err := NewParquet(dir)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	if _, err := s.Start(ctx, Run{ID: "kill-" + os.Getenv("PQKILL_RUN"), Source: "src"}); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	i := int(s.ledger.Seq)
	fmt.Println("START", i)
	s.publishHook = func(step string) error { fmt.Println("STEP", step, i); return nil }
	mem := memory.NewGoAllocator()
	for ; ; i++ {
		c, done := contactsCommit(t, mem, i)
		if err := s.Commit(ctx, c); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		done()
		fmt.Println("COMMITTED", i)
	}
}

// killTruth is the contacts table after commits 0..n-1 of contactsCommit:
// "id=name" joined as globCounts joins them, and the deleted count.
func killTruth(n int) (names string, deleted int64) {
	name, del := map[string]string{}, map[string]bool{}
	for j := range n {
		for k := range 5 {
			id := fmt.Sprintf("c%03d", (j*7+k)%150)
			name[id], del[id] = fmt.Sprintf("n%d", j), false
		}
		if j%10 == 9 {
			if id := fmt.Sprintf("c%03d", j%150); name[id] != "" {
				del[id] = true
			}
		}
	}
	var ids []string
	for id := range name {
		ids = append(ids, id)
		if del[id] {
			deleted++
		}
	}
	sort.Strings(ids)
	for i, id := range ids {
		ids[i] = id + "=" + name[id]
	}
	return strings.Join(ids, ","), deleted
}

// committedKeys is how many keys commits 0..n-1 of contactsCommit wrote.
func committedKeys(n int) int64 {
	names, _ := killTruth(n)
	if names == "" {
		return 0
	}
	return int64(strings.Count(names, ",") + 1)
}

// A child process commits in a loop and is SIGKILLed after a random
// number of its own output lines (publish steps and commits), not after a
// time. Right after each kill a plain glob reads each key once; then a
// Start recovers the directory, and the glob reads every committed commit's rows once: no duplicate key, no lost or
// extra commit, no orphan file, no staging left. 8 kills; SOAK=1: 40.
func TestParquetSIGKILL(t *testing.T) {
	kills := 8
	if os.Getenv("SOAK") == "1" {
		kills = 40
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PQKILL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (PQKILL_SEED reruns it)", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	ctx, dir := context.Background(), t.TempDir()
	for k := range kills {
		cmd := osexec.Command(os.Args[0], "-test.run=^TestParquetKillHelper$")
		cmd.Env = append(os.Environ(), "PQKILL_DIR="+dir, "PQKILL_RUN="+strconv.Itoa(k))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		after := 1 + rnd.IntN(12) // lines to read before the kill
		lastCommitted, lastLine := -1, ""
		for n := 0; n < after && sc.Scan(); n++ {
			lastLine = sc.Text()
			if f := strings.Fields(lastLine); len(f) == 2 && f[0] == "COMMITTED" {
				lastCommitted, _ = strconv.Atoi(f[1])
			} else if f[0] == "ERROR" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("kill %d: child: %s", k, lastLine)
			}
		}
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
		// Before any recovery a glob reader sees every key once: in the
		// old version of its bucket or the new, never both, never none.
		if rows, keys, _, _ := globCounts(t, dir); rows != keys || keys < committedKeys(lastCommitted+1) {
			t.Fatalf("kill %d after %q, before recovery: glob reads %d rows, %d keys, want one row per key and at least %d keys",
				k, lastLine, rows, keys, committedKeys(lastCommitted+1))
		}
		// Recover as the next run would, and read the tree with a glob.
		s, err := NewParquet(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, Run{ID: fmt.Sprintf("check-%d", k), Source: "src"}); err != nil {
			t.Fatalf("kill %d (after %q): Start: %v", k, lastLine, err)
		}
		n := int(s.ledger.Seq)
		if n <= lastCommitted {
			t.Fatalf("kill %d: manifest has %d commits, the child had reported commit %d", k, n, lastCommitted)
		}
		rows, keys, deleted, names := globCounts(t, dir)
		wantNames, wantDel := killTruth(n)
		if rows != keys || names != wantNames || deleted != wantDel {
			t.Fatalf("kill %d after %q: %d commits; glob reads %d rows, %d keys, %d deleted\n%s\nwant %d deleted\n%s",
				k, lastLine, n, rows, keys, deleted, names, wantDel, wantNames)
		}
		listed := map[string]bool{}
		for _, f := range s.ledger.Tables["contacts"] {
			listed[filepath.Join(dir, filepath.FromSlash(f.Path))] = true
		}
		files, _ := filepath.Glob(filepath.Join(dir, "contacts", "*", "*"))
		for _, f := range files {
			if !listed[f] {
				t.Errorf("kill %d: orphan file %s", k, f)
			}
		}
		if len(files) != len(listed) {
			t.Errorf("kill %d: %d files on disk, manifest lists %d", k, len(files), len(listed))
		}
		if _, err := os.Stat(filepath.Join(dir, parquetStagingDir)); err == nil {
			t.Errorf("kill %d: staging area left after Start", k)
		}
		s.Close(ctx)
		t.Logf("kill %d after %q: %d commits recovered, %d keys", k, lastLine, n, keys)
	}
}
