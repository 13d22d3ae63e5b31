package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// ArchivedRun is one run found in an archive.
type ArchivedRun struct {
	Run       load.Run
	Options   Options
	BatchRows int
	Dir       string
	// Ended is the run's outcome; nil when the run never finished (a
	// crash): its files may end in a torn line, which is dropped.
	Ended     *load.RunResult
	Locations []string // location files, sorted
}

// ErrNotArchived reports a warehouse run whose records the archive lacks:
// a remap could not rebuild what it read.
var ErrNotArchived = errors.New("run not archived")

// ReadArchive lists the runs of the archive in dir, in the order they
// started.
func ReadArchive(dir string) ([]ArchivedRun, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var out []ArchivedRun
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		rd := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(filepath.Join(rd, "run.json"))
		if errors.Is(err, os.ErrNotExist) {
			continue // not a run's folder
		}
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		var ar archiveRun
		if err := json.Unmarshal(b, &ar); err != nil {
			return nil, fmt.Errorf("archive %s: run.json: %w", rd, err)
		}
		if ar.Version != archiveVersion {
			return nil, fmt.Errorf("archive %s: format version %d, this build reads %d", rd, ar.Version, archiveVersion)
		}
		run := ArchivedRun{Run: ar.Run, Options: ar.Options, BatchRows: ar.BatchRows, Dir: rd}
		if b, err := os.ReadFile(filepath.Join(rd, "end.json")); err == nil {
			var res load.RunResult
			if err := json.Unmarshal(b, &res); err != nil {
				return nil, fmt.Errorf("archive %s: end.json: %w", rd, err)
			}
			run.Ended = &res
		}
		files, err := filepath.Glob(filepath.Join(rd, "*.jsonl.zst"))
		if err != nil {
			return nil, err
		}
		slices.Sort(files)
		run.Locations = files
		out = append(out, run)
	}
	slices.SortFunc(out, func(a, b ArchivedRun) int {
		if c := a.Run.StartedAt.Compare(b.Run.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Run.ID, b.Run.ID)
	})
	return out, nil
}

// CheckArchived returns an error naming the first of the warehouse's runs
// (ids in the order they started) that the archive does not hold.
func CheckArchived(runs []ArchivedRun, warehouse []string) error {
	have := map[string]bool{}
	for _, r := range runs {
		have[r.Run.ID] = true
	}
	for _, id := range warehouse {
		if !have[id] {
			return fmt.Errorf("%w: the warehouse's run %s is not in the archive (was it run without --archive?); remap rebuilds only from a complete archive", ErrNotArchived, id)
		}
	}
	return nil
}

// RemapJob rebuilds a warehouse from archived runs.
type RemapJob struct {
	Runs []ArchivedRun
	// Sink is the warehouse rebuilt, normally a fresh one.
	Sink load.Sink
	// Transform is the mapping to apply, as a run of this build would
	// (e.g. NewJob(settings…).Transform); its Source, RunID, ExtractedAt
	// and NaiveZone are replaced by each archived run's.
	Transform  transform.Config
	CommitRows int // 0: DefaultCommitRows
	Log        *slog.Logger
}

// RemapResult is what a remap did.
type RemapResult struct {
	Runs     int
	Records  int64 // archived records replayed (marks excluded)
	Requests int64 // API calls the archived runs made (none is made now)
	Rows     transform.Counts
	Commits  int
	Duration time.Duration
}

// Remap replays each archived run, in the order they started, through the
// same transform and committer as the run itself: the same windows,
// watermarks, marks, deletes (404s, reconciliations) and run rows, with
// the mapping of this build. It makes no API request.
func Remap(ctx context.Context, rj RemapJob) (RemapResult, error) {
	start := time.Now()
	res := RemapResult{Rows: transform.Counts{}}
	if rj.Log == nil {
		rj.Log = slog.New(slog.DiscardHandler)
	}
	for _, ar := range rj.Runs {
		if err := remapRun(ctx, rj, ar, &res); err != nil {
			return res, fmt.Errorf("remap run %s: %w", ar.Run.ID, err)
		}
		res.Runs++
	}
	res.Duration = time.Since(start)
	return res, nil
}

func remapRun(ctx context.Context, rj RemapJob, ar ArchivedRun, res *RemapResult) error {
	tc := rj.Transform
	tc.Source, tc.RunID, tc.ExtractedAt = ar.Run.Source, ar.Run.ID, ar.Run.StartedAt
	if tc.BatchRows <= 0 {
		tc.BatchRows = ar.BatchRows
	}
	j := Job{Run: ar.Run, Sink: rj.Sink, Options: ar.Options, CommitRows: rj.CommitRows, Log: rj.Log, Transform: tc}
	if j.CommitRows <= 0 {
		j.CommitRows = DefaultCommitRows
	}
	r := newRunner(j)
	defer r.checkMemory()
	var clock atomic.Int64 // the archived time of the latest mark handed on
	clock.Store(ar.Run.StartedAt.UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	if _, err := rj.Sink.Start(ctx, ar.Run); err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	var errs []error
	last := ar.Run.StartedAt
	for _, path := range ar.Locations {
		n, reqs, at, err := r.replayFile(ctx, path, ar.Ended == nil, &clock)
		res.Records += n
		res.Requests += reqs
		if at.After(last) {
			last = at
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(path), err))
			break
		}
	}
	for t, n := range r.counts {
		res.Rows[t] += n
	}
	res.Commits += r.commits
	rr := load.RunResult{RunID: ar.Run.ID, EndedAt: last, Outcome: "failed", Error: "the run did not finish (archived without an outcome)"}
	if ar.Ended != nil {
		rr = *ar.Ended
	}
	if err := errors.Join(errs...); err != nil {
		rr.Outcome, rr.Error = "failed", "remap: "+err.Error()
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := rj.Sink.Finish(fctx, rr); err != nil {
		errs = append(errs, fmt.Errorf("finish run: %w", err))
	}
	return errors.Join(errs...)
}

// replayFile replays one location's archived pipes, in order. torn allows
// a torn last line (a run that crashed while writing).
func (r *runner) replayFile(ctx context.Context, path string, torn bool, clock *atomic.Int64) (records, requests int64, last time.Time, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, last, err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, 0, last, err
	}
	defer dec.Close()
	lr := &lineReader{sc: bufio.NewReader(dec), torn: torn}
	line, ok := lr.next()
	for ok {
		last = line.At
		switch line.T {
		case lineRequest:
			requests++
			line, ok = lr.next()
			continue
		case linePipe:
		default:
			return records, requests, last, fmt.Errorf("archive line %d: %q outside a pipe", lr.n, line.T)
		}
		zone, zerr := time.LoadLocation(line.Zone)
		if zerr != nil {
			return records, requests, last, fmt.Errorf("archive line %d: zone %q: %w", lr.n, line.Zone, zerr)
		}
		cm := &committer{j: r, loc: line.Location, watermark: line.Watermark, pending: map[string]bool{}}
		for _, id := range line.Pending {
			cm.pending[id] = true
		}
		for _, w := range line.Windows {
			cm.wins = append(cm.wins, &Window{Window: w})
		}
		var next archiveLine
		more := false
		err := r.flow(ctx, zone, cm, func(ctx context.Context, out chan<- api.Record) error {
			for {
				l, ok := lr.next()
				if !ok {
					return nil
				}
				last = l.At
				var rec api.Record
				switch l.T {
				case linePipe:
					next, more = l, true
					return nil
				case lineRequest:
					requests++
					continue
				case lineMark:
					if l.Mark == nil {
						return fmt.Errorf("archive line %d: mark without a mark", lr.n)
					}
					clock.Store(l.At.UnixNano())
					rec = api.Record{LocationID: cm.loc, Mark: l.Mark}
				case lineRecord:
					records++
					raw := l.Bytes
					if raw == nil {
						raw = []byte(l.Text)
					}
					rec = api.Record{Resource: l.Resource, LocationID: cm.loc, ContactID: l.ContactID, Raw: raw, Problem: l.Problem}
				default:
					return fmt.Errorf("archive line %d: unknown type %q", lr.n, l.T)
				}
				if err := sendRecord(ctx, out, rec); err != nil {
					return err
				}
			}
		})
		if err == nil {
			err = lr.err
		}
		if err != nil {
			return records, requests, last, err
		}
		line, ok = next, more
	}
	return records, requests, last, lr.err
}

// lineReader reads archive lines; a read error ends it and is kept in
// err, except a torn tail when torn is set.
type lineReader struct {
	sc   *bufio.Reader
	torn bool
	n    int
	err  error
}

func (lr *lineReader) next() (archiveLine, bool) {
	if lr.err != nil {
		return archiveLine{}, false
	}
	b, err := lr.sc.ReadBytes('\n')
	if err != nil {
		if !errors.Is(err, io.EOF) && !lr.torn {
			lr.err = fmt.Errorf("archive read after line %d: %w", lr.n, err)
		} else if len(bytes.TrimSpace(b)) > 0 && !lr.torn {
			lr.err = fmt.Errorf("archive line %d is incomplete", lr.n+1)
		}
		return archiveLine{}, false
	}
	lr.n++
	var l archiveLine
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // cursors keep their digits
	if err := d.Decode(&l); err != nil {
		lr.err = fmt.Errorf("archive line %d: %w", lr.n, err)
		return archiveLine{}, false
	}
	return l, true
}
