// Command etlbench measures the exporter as a separate process against the
// simulator as another process, so the memory and CPU it reports are the
// exporter's alone (issue 10). It prints one table:
//
//   - export wall ÷ raw fetch at -contacts contacts with children: the raw
//     fetch is this program sending the same requests (search pages in
//     cursor mode, three child lists per contact) at the same concurrency,
//     bodies read and discarded, against the same simulator process;
//   - peak RSS of the exporter (rusage maxrss of the child) at 50k and 100k
//     contacts with children and, contacts only, at 50k and 500k;
//   - the exporter's CPU (user+sys) per contact (contacts only) and per row
//     (all four tables);
//   - a faulted run (sporadic unexplained 429 bursts, 5% 5xx, 2% resets, 1%
//     truncated bodies) ÷ the clean run, 5k contacts, all four tables;
//   - first-run requests ÷ (search pages + child requests);
//   - with -incr N (off by default): after a contacts-only first load of N
//     contacts, the peak RSS and CPU of a second run on the same warehouse
//     that reconciles (lists every id and diffs it against the stored
//     ones) and skips the unchanged contacts: what the first loads above
//     never show of the per-location state a later run reads.
//
// Every run starts a fresh simulator and a fresh warehouse, with the
// exporter's defaults (concurrency, page limit, batch and commit sizes).
// Run it with `make bench` (which builds bin/contacts-etl first).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// Sizes and settings of the runs.
const (
	benchSeed      = 42
	benchLocations = 2
	faultContacts  = 5_000
)

// faultFlags is the fault mix, as simulator flags: sporadic 429
// bursts whose headers say the window is far from spent, 5% 5xx, 2% resets,
// 1% truncated bodies.
var faultFlags = []string{"--fault-429", "0.002", "--fault-429-len", "5", "--fault-429-unexplained", "--retry-after",
	"--fault-5xx", "0.05", "--fault-reset", "0.02", "--fault-truncate", "0.01"}

func main() {
	bin := flag.String("bin", "bin/contacts-etl", "the exporter binary")
	contacts := flag.Int("contacts", 100_000, "contacts of the export-vs-raw run (with children)")
	mid := flag.Int("mid", 50_000, "contacts of the second run with children, and of the small contacts-only run")
	big := flag.Int("big", 500_000, "contacts of the large contacts-only run (0: skip)")
	withFaults := flag.Bool("faults", true, "measure the faulted run against a clean one")
	keep := flag.String("dir", "", "working directory (default a temporary one, removed at the end)")
	extra := flag.String("exporter-flags", "", "extra flags for every export, space-separated (e.g. --commit-rows 10000)")
	exEnv := flag.String("exporter-env", "", "extra environment of every export, space-separated (e.g. GODEBUG=gctrace=1)")
	withRaw := flag.Bool("raw", true, "run the raw fetch (without it, the ratio and the minimum are not printed)")
	profile := flag.String("profile", "", "write the exporter's CPU and allocation profiles of the main run to this prefix")
	incr := flag.Int("incr", 0, "contacts of a contacts-only first load followed by a second, reconciling run on the same warehouse, measured (0: skip)")
	incrBins := flag.String("incr-bins", "", "comma-separated exporter binaries for -incr's second run (default -bin), run in turn, each on a fresh copy of the first load's warehouse")
	incrRounds := flag.Int("incr-rounds", 1, "how many times -incr runs each of -incr-bins")
	flag.Parse()

	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "etlbench-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	b := &bench{bin: *bin, dir: dir, extra: strings.Fields(*extra), env: strings.Fields(*exEnv)}
	ctx := context.Background()
	var rows []string
	add := func(format string, a ...any) { rows = append(rows, fmt.Sprintf(format, a...)) }
	started := time.Now()

	// 1. The main run: export vs raw fetch, with children.
	if *contacts > 0 {
		b.mainRun(ctx, *contacts, *withRaw, *profile, add)
	}

	// 2. Memory at other sizes, and CPU per contact without children.
	if *mid > 0 {
		s, err := b.simulator(ctx, *mid, nil)
		if err != nil {
			fatal(err)
		}
		r, err := b.export(ctx, s, "mid", nil)
		s.close()
		if err != nil {
			fatal(err)
		}
		add("%-58s %12s", fmt.Sprintf("peak RSS, %dk contacts with children", *mid/1000), mib(r.maxRSS))
		add("%-58s %12s", "  (sampled peak: anonymous + file-backed)", rssParts(r))
	}
	var small result
	for _, n := range []int{*mid, *big} {
		if n <= 0 {
			continue
		}
		s, err := b.simulator(ctx, n, nil)
		if err != nil {
			fatal(err)
		}
		r, err := b.export(ctx, s, fmt.Sprintf("contacts-%d", n), nil, "--children", "")
		s.close()
		if err != nil {
			fatal(err)
		}
		add("%-58s %12s", fmt.Sprintf("peak RSS, %dk contacts only", n/1000), mib(r.maxRSS))
		add("%-58s %12s", "  (sampled peak: anonymous + file-backed)", rssParts(r))
		add("%-58s %12s", fmt.Sprintf("CPU per contact, contacts only, %dk", n/1000), fmt.Sprintf("%.1f µs", r.cpuPer(r.rows)))
		if n == *mid {
			small = r
		} else if small.maxRSS > 0 {
			add("%-58s %12s", fmt.Sprintf("  peak RSS %dk ÷ %dk, contacts only", n/1000, *mid/1000), fmt.Sprintf("%.2f", float64(r.maxRSS)/float64(small.maxRSS)))
		}
	}

	// 2b. A second run on the warehouse of a first load: reconciliation
	// and the unchanged check read the location's stored contacts.
	if *incr > 0 {
		bins := strings.Split(*incrBins, ",")
		if *incrBins == "" {
			bins = []string{b.bin}
		}
		b.incremental(ctx, *incr, bins, *incrRounds, add)
	}

	// 3. Faults against a clean run of the same data; then the same faults
	// with every retry wait scaled to zero, which is the exporter's own cost
	// of the faults (re-sent requests, re-read bodies): the difference
	// between the two faulted runs is the waits the API asked for (429s'
	// Retry-After) and the backoff, "the retries' own delays".
	if *withFaults {
		var clean, faulted, undelayed result
		runs := []struct {
			flags []string
			env   []string
			into  *result
		}{{nil, nil, &clean}, {faultFlags, nil, &faulted}, {faultFlags, []string{"CONTACTS_ETL_RETRY_DELAY_SCALE=0"}, &undelayed}}
		for i, run := range runs {
			s, err := b.simulator(ctx, faultContacts, run.flags)
			if err != nil {
				fatal(err)
			}
			r, err := b.export(ctx, s, fmt.Sprintf("faults-%d", i), run.env)
			s.close()
			if err != nil {
				fatal(err)
			}
			*run.into = r
		}
		add("%-58s %12s", fmt.Sprintf("faulted run ÷ clean run, %dk contacts, all tables", faultContacts/1000),
			fmt.Sprintf("%.2f", faulted.wall.Seconds()/clean.wall.Seconds()))
		add("%-58s %12s", "  (faulted s / clean s; retries, 429s)", fmt.Sprintf("%.1f / %.1f; %d, %d", faulted.wall.Seconds(), clean.wall.Seconds(), faulted.retries, faulted.limited))
		add("%-58s %12s", "faulted run without retry waits ÷ clean run", fmt.Sprintf("%.2f", undelayed.wall.Seconds()/clean.wall.Seconds()))
		add("%-58s %12s", "  (s; retries, 429s; the retries' own delays = difference)", fmt.Sprintf("%.1f; %d, %d; %.1f s", undelayed.wall.Seconds(), undelayed.retries, undelayed.limited,
			faulted.wall.Seconds()-undelayed.wall.Seconds()))
		for _, r := range []result{faulted, undelayed} {
			if r.rows != clean.rows {
				add("%-58s %12s", "  ROWS DIFFER (faulted / clean)", fmt.Sprintf("%d / %d", r.rows, clean.rows))
			}
		}
	}

	fmt.Printf("\ncontacts-etl benchmark (issue 10): %d locations, seed %d, exporter defaults %s, %d CPUs, %s\n",
		benchLocations, benchSeed, strings.Join(b.extra, " "), runtime.NumCPU(), time.Since(started).Round(time.Second))
	fmt.Printf("%-58s %12s\n", "measure", "value")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// mainRun exports contacts with children and fetches the same requests
// raw, against one simulator process.
func (b *bench) mainRun(ctx context.Context, contacts int, withRaw bool, profile string, add func(string, ...any)) {
	s, err := b.simulator(ctx, contacts, nil)
	if err != nil {
		fatal(err)
	}
	raw := rawResult{wall: 1, requests: 1}
	if withRaw {
		if raw, err = rawFetch(ctx, s, extract.DefaultConcurrency, extract.DefaultPageLimit); err != nil {
			fatal(fmt.Errorf("raw fetch: %w", err))
		}
	}
	env := []string{}
	if profile != "" {
		env = append(env, "CONTACTS_ETL_CPUPROFILE="+profile+".cpu", "CONTACTS_ETL_MEMPROFILE="+profile+".allocs")
	}
	top, err := b.export(ctx, s, "main", env)
	s.close()
	if err != nil {
		fatal(err)
	}
	minimum := raw.requests + int64(len(s.locations)) // + one time-zone read per location
	if withRaw {
		add("%-58s %12s", fmt.Sprintf("export wall ÷ raw fetch, %dk contacts with children", contacts/1000),
			fmt.Sprintf("%.2f", top.wall.Seconds()/raw.wall.Seconds()))
		add("%-58s %12s", "  (export s / raw fetch s)", fmt.Sprintf("%.1f / %.1f", top.wall.Seconds(), raw.wall.Seconds()))
	} else {
		add("%-58s %12s", fmt.Sprintf("export wall, %dk contacts with children", contacts/1000), fmt.Sprintf("%.1f s", top.wall.Seconds()))
	}
	add("%-58s %12s", fmt.Sprintf("peak RSS, %dk contacts with children", contacts/1000), mib(top.maxRSS))
	add("%-58s %12s", "  (sampled peak: anonymous + file-backed)", rssParts(top))
	add("%-58s %12s", "CPU per row, all four tables", fmt.Sprintf("%.1f µs", top.cpuPer(top.rows)))
	if withRaw {
		add("%-58s %12s", "  (raw fetch client's CPU per row, for scale)", fmt.Sprintf("%.1f µs", float64(raw.cpu.Microseconds())/float64(max(top.rows, 1))))
		add("%-58s %12s", "first-run requests ÷ (search pages + child requests)", fmt.Sprintf("%.4f", float64(top.requests)/float64(minimum)))
		add("%-58s %12s", "  (requests / minimum incl. 1 time-zone read per location)", fmt.Sprintf("%d / %d", top.requests, minimum))
	}
}

// incremental exports n contacts (no children), then runs each of bins,
// rounds times in turn, on a copy of that warehouse with the
// reconciliation forced, and reports each second run.
func (b *bench) incremental(ctx context.Context, n int, bins []string, rounds int, add func(string, ...any)) {
	s, err := b.simulator(ctx, n, nil)
	if err != nil {
		fatal(err)
	}
	defer s.close()
	dir, err := b.workdir(ctx, s, "incr")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	flags := []string{"--children", "", "--reconcile-every", "0"}
	first, err := b.exportIn(ctx, s, dir, "incr-first", nil, flags...)
	if err != nil {
		fatal(err)
	}
	add("%-58s %12s", fmt.Sprintf("peak RSS, first load of %dk contacts only", n/1000), mib(first.maxRSS))
	bin := b.bin
	defer func() { b.bin = bin }()
	for round := range rounds {
		for i, exe := range bins {
			again := dir
			if rounds*len(bins) > 1 {
				if again, err = copyDir(dir, fmt.Sprintf("%s-%d-%d", dir, round, i)); err != nil {
					fatal(err)
				}
			}
			b.bin = exe
			second, err := b.exportIn(ctx, s, again, fmt.Sprintf("incr-second-%d", i), nil, flags...)
			if again != dir {
				os.RemoveAll(again)
			}
			if err != nil {
				fatal(err)
			}
			name := "second run"
			if len(bins) > 1 {
				name = fmt.Sprintf("second run of %s", filepath.Base(exe))
			}
			add("%-58s %12s", fmt.Sprintf("peak RSS, %s (reconciles)", name), mib(second.maxRSS))
			add("%-58s %12s", "  CPU / wall (s); requests", fmt.Sprintf("%.1f / %.1f; %d", second.cpu.Seconds(), second.wall.Seconds(), second.requests))
		}
	}
}

// copyDir copies the files of dir into a new directory to.
func copyDir(dir, to string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dir, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return "", err
		}
	}
	return to, nil
}

// copyFile copies a file in small pieces: an exporter started afterwards
// counts this process's peak RSS at its fork in its own (Linux keeps the
// maximum across exec).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

type bench struct {
	bin   string
	dir   string
	extra []string
	env   []string
	n     int
}

// simProc is a running simulator process.
type simProc struct {
	cmd       *exec.Cmd
	base      string
	locations []string
	codes     map[string]string
	toks      map[string]*oauth2.Token
	contacts  int
}

var (
	reListen = regexp.MustCompile(`^simulator listening on (\S+)`)
	reLocs   = regexp.MustCompile(`^locations: (\S+)`)
	reCode   = regexp.MustCompile(`^authorization code for (\S+): (\S+)`)
)

// simulator starts `contacts-etl simulate` and reads its address,
// locations and authorization codes from its output.
func (b *bench) simulator(ctx context.Context, contacts int, flags []string) (*simProc, error) {
	args := append([]string{"simulate", "--addr", "127.0.0.1:0", "--seed", strconv.Itoa(benchSeed),
		"--contacts", strconv.Itoa(contacts), "--locations", strconv.Itoa(benchLocations),
		"--scopes", api.ScopeLocationsRO}, flags...)
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &simProc{cmd: cmd, codes: map[string]string{}, contacts: contacts}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if m := reListen.FindStringSubmatch(line); m != nil {
			s.base = m[1]
		}
		if m := reLocs.FindStringSubmatch(line); m != nil {
			s.locations = strings.Split(m[1], ",")
		}
		if m := reCode.FindStringSubmatch(line); m != nil {
			s.codes[m[1]] = m[2]
		}
		if s.base != "" && len(s.locations) > 0 && len(s.codes) == len(s.locations) {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if s.base == "" || len(s.codes) != len(s.locations) {
		s.close()
		return nil, errors.New("simulator did not print its address and codes")
	}
	return s, nil
}

func (s *simProc) close() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// tokens exchanges the simulator's authorization codes for tokens, once
// (each code is single use): the raw fetch and the export share the access
// tokens, which outlive a benchmark.
func (s *simProc) tokens(ctx context.Context) (map[string]*oauth2.Token, error) {
	if s.toks != nil {
		return s.toks, nil
	}
	conf := s.oauth()
	out := map[string]*oauth2.Token{}
	for _, loc := range s.locations {
		tok, err := conf.Exchange(ctx, s.codes[loc], oauth2.SetAuthURLParam("user_type", "Location"))
		if err != nil {
			return nil, fmt.Errorf("log in to %s: %w", loc, err)
		}
		out[loc] = tok
	}
	s.toks = out
	return out, nil
}

func (s *simProc) oauth() *oauth2.Config {
	return &oauth2.Config{ClientID: sim.DefaultClientID, ClientSecret: sim.DefaultClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: s.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// result is what one exporter process did.
type result struct {
	wall              time.Duration
	cpu               time.Duration // user + sys
	maxRSS            int64         // bytes
	sampled           rssSample     // the sampled peak's parts (Linux)
	requests, retries int64
	limited           int64
	rows              int64 // contacts + tasks + notes + appointments
}

// rssSample is one reading of a process's resident memory: anonymous
// (heaps: Go's, C's, DuckDB's) and file-backed (mostly the binary's code,
// DuckDB's included: shared with the page cache and reclaimable).
type rssSample struct{ anon, file int64 } // bytes

// sampleRSS reads /proc/<pid>/status every 10 ms until stop is closed and
// returns the reading with the largest total. On a system without /proc it
// returns zeros. Readings miss a peak shorter than the period: ru_maxrss
// stays the measure, this its breakdown.
func sampleRSS(pid int, stop <-chan struct{}) rssSample {
	var best rssSample
	path := fmt.Sprintf("/proc/%d/status", pid)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			var s rssSample
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[0] {
				case "RssAnon:":
					s.anon = kb * 1024
				case "RssFile:":
					s.file = kb * 1024
				}
			}
			if s.anon+s.file > best.anon+best.file {
				best = s
			}
		}
		select {
		case <-stop:
			return best
		case <-t.C:
		}
	}
}

// rssParts is the line under a peak RSS: its sampled parts.
func rssParts(r result) string {
	if r.sampled.anon == 0 {
		return "–"
	}
	return fmt.Sprintf("%s + %s", mib(r.sampled.anon), mib(r.sampled.file))
}

func (r result) cpuPer(n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(n)
}

var (
	reRows     = regexp.MustCompile(`^\s+(contacts|tasks|notes|appointments)\s+(\d+) rows`)
	reRequests = regexp.MustCompile(`^requests\s+(\d+) \(retries (\d+), 429s (\d+)\)`)
)

// export runs `contacts-etl run` against s with a token store of its own
// and a fresh warehouse, and measures the process.
func (b *bench) export(ctx context.Context, s *simProc, name string, env []string, flags ...string) (result, error) {
	dir, err := b.workdir(ctx, s, name)
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	return b.exportIn(ctx, s, dir, name, env, flags...)
}

// workdir makes a new directory for exports against s, with a token store
// holding s's tokens.
func (b *bench) workdir(ctx context.Context, s *simProc, name string) (string, error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("%02d-%s", b.n, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	toks, err := s.tokens(ctx)
	if err != nil {
		return "", err
	}
	store := auth.NewStore(filepath.Join(dir, "tokens.json"))
	for loc, tok := range toks {
		if err := store.Put(ctx, loc, auth.FromOAuth(tok)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// exportIn runs `contacts-etl run` against s with the token store and the
// warehouse of dir (see workdir), and measures the process.
func (b *bench) exportIn(ctx context.Context, s *simProc, dir, name string, env []string, flags ...string) (result, error) {
	var r result
	args := append([]string{"run", "--source", "sim", "--base-url", s.base, "--locations", strings.Join(s.locations, ","),
		"--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", filepath.Join(dir, "tokens.json"),
		"--warehouse", filepath.Join(dir, "w.duckdb"), "--log-level", "warn"}, b.extra...)
	args = append(args, flags...)
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(append(os.Environ(), "CONTACTS_ETL_CLIENT_SECRET="+sim.DefaultClientSecret), append(b.env, env...)...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		stop := make(chan struct{})
		sampled := make(chan rssSample)
		go func() { sampled <- sampleRSS(cmd.Process.Pid, stop) }()
		err = cmd.Wait()
		close(stop)
		r.sampled = <-sampled
	}
	r.wall = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("export %s: %w\n%s", name, err, stdout.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return r, errors.New("no rusage on this platform")
	}
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	r.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	for _, line := range strings.Split(stdout.String(), "\n") {
		if m := reRows.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			r.rows += n
		}
		if m := reRequests.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseInt(m[1], 10, 64)
			r.retries, _ = strconv.ParseInt(m[2], 10, 64)
			r.limited, _ = strconv.ParseInt(m[3], 10, 64)
		}
	}
	fmt.Fprintf(os.Stderr, "etlbench: %-16s %6d contacts %8d rows %7d requests  wall %6.1fs  cpu %6.1fs  maxrss %s\n",
		name, s.contacts, r.rows, r.requests, r.wall.Seconds(), r.cpu.Seconds(), mib(r.maxRSS))
	return r, nil
}

type rawResult struct {
	wall     time.Duration
	cpu      time.Duration // of this process while it fetched (it does nothing else)
	requests int64
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawFetch sends the requests a first full export sends, bodies read and
// discarded: search pages in cursor mode and the three child lists of each
// contact, concurrency child requests in flight per location, all
// locations at once.
func rawFetch(ctx context.Context, s *simProc, concurrency, pageLimit int) (rawResult, error) {
	toks, err := s.tokens(ctx)
	if err != nil {
		return rawResult{}, err
	}
	var reqs atomic.Int64
	start, cpu0 := time.Now(), selfCPU()
	g, ctx := errgroup.WithContext(ctx)
	for _, loc := range s.locations {
		tr := &http.Transport{MaxIdleConnsPerHost: concurrency + 2, MaxConnsPerHost: concurrency + 2}
		hc := &http.Client{Transport: &oauth2.Transport{Source: s.oauth().TokenSource(ctx, toks[loc]), Base: tr}}
		do := func(ctx context.Context, method, path string, body []byte, keep bool) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Version", api.VersionContacts)
			req.Header.Set("Accept", "application/json")
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			reqs.Add(1)
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
			}
			if keep {
				return io.ReadAll(resp.Body)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			return nil, err
		}
		g.Go(func() error {
			fan, fctx := errgroup.WithContext(ctx)
			fan.SetLimit(concurrency)
			sr := api.SearchRequest{LocationID: loc, PageLimit: pageLimit, Sort: []api.Sort{{Field: "dateUpdated", Direction: "asc"}}}
			for {
				body, err := json.Marshal(sr)
				if err != nil {
					return err
				}
				page, err := do(fctx, http.MethodPost, "/contacts/search", body, true)
				if err != nil {
					return errors.Join(err, fan.Wait())
				}
				var resp struct {
					Contacts []struct {
						ID          string `json:"id"`
						SearchAfter []any  `json:"searchAfter"`
					} `json:"contacts"`
				}
				if err := json.Unmarshal(page, &resp); err != nil {
					return errors.Join(err, fan.Wait())
				}
				for _, c := range resp.Contacts {
					for _, res := range extract.ChildResources {
						fan.Go(func() error {
							_, err := do(fctx, http.MethodGet, "/contacts/"+c.ID+"/"+res, nil, false)
							return err
						})
					}
				}
				if len(resp.Contacts) < sr.PageLimit { // as the exporter: a short page is the last
					break
				}
				sr.SearchAfter = resp.Contacts[len(resp.Contacts)-1].SearchAfter
			}
			return fan.Wait()
		})
	}
	err = g.Wait()
	res := rawResult{wall: time.Since(start), cpu: selfCPU() - cpu0, requests: reqs.Load()}
	fmt.Fprintf(os.Stderr, "etlbench: %-16s %6d contacts %8s      %7d requests  wall %6.1fs  cpu %6.1fs\n", "raw fetch", s.contacts, "", res.requests, res.wall.Seconds(), res.cpu.Seconds())
	return res, err
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "etlbench:", err)
	os.Exit(1)
}
