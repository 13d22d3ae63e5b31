package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// job wires extract → transform → load for one run.
type job struct {
	run        load.Run
	clients    []*extract.Client // one per location
	sink       load.Sink
	stream     extract.StreamOptions
	transform  transform.Config
	workers    int // locations at once
	commitRows int
	log        *slog.Logger
}

// result is what a run did.
type result struct {
	Rows     transform.Counts
	Requests int64
	Retries  int64
	Limited  int64
	Commits  int
	Duration time.Duration
}

// execute runs the job. Whatever was extracted before a failure is still
// committed (committed data is always complete records), then the run row
// records the outcome.
func (j *job) execute(ctx context.Context) (res result, err error) {
	start := time.Now()
	if _, err := j.sink.Start(ctx, j.run); err != nil {
		return res, fmt.Errorf("start run: %w", err)
	}
	records := make(chan api.Record, 1024)
	batches := make(chan transform.Batch, 8)
	exCtx, cancelEx := context.WithCancel(ctx)
	defer cancelEx()

	var exErr error
	exDone := make(chan struct{})
	go func() {
		defer close(exDone)
		defer close(records)
		g, gctx := errgroup.WithContext(exCtx)
		g.SetLimit(j.workers)
		for _, c := range j.clients {
			g.Go(func() error {
				if err := extract.Stream(gctx, c, j.stream, records); err != nil {
					return fmt.Errorf("location %s: %w", c.Location(), err)
				}
				j.log.Info("location done", "location", c.Location())
				return nil
			})
		}
		exErr = g.Wait()
	}()

	stage := transform.New(j.transform)
	defer stage.Close()
	var tfErr error
	go func() {
		defer close(batches)
		tfErr = stage.Run(ctx, records, batches)
	}()

	cm := committer{sink: j.sink, runID: j.run.ID, limit: j.commitRows, log: j.log}
	var loadErr error
	for b := range batches {
		if loadErr != nil { // drain so the stages can finish
			releaseBatch(b)
			continue
		}
		if loadErr = cm.add(ctx, b); loadErr != nil {
			cancelEx()
		}
	}
	<-exDone
	if loadErr == nil {
		loadErr = cm.flush(ctx)
	}
	cm.release()
	err = errors.Join(exErr, tfErr, loadErr)

	res.Rows = stage.Counts()
	for _, c := range j.clients {
		s := c.Stats()
		res.Requests += s.Requests.Load()
		res.Retries += s.Retries.Load()
		res.Limited += s.RateLimited.Load()
	}
	res.Commits = cm.commits
	res.Duration = time.Since(start)
	rr := load.RunResult{
		RunID: j.run.ID, EndedAt: time.Now().UTC(), Outcome: "ok",
		Requests: res.Requests, Retries: res.Retries, RateLimited: res.Limited,
		Rows: map[string]int64{}, Rejects: res.Rows["rejects"],
	}
	for k, v := range res.Rows {
		if k != "rejects" {
			rr.Rows[k] = v
		}
	}
	if err != nil {
		rr.Outcome, rr.Error = "failed", err.Error()
	}
	// Record the outcome even when ctx was cancelled (an interrupt).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if ferr := j.sink.Finish(fctx, rr); ferr != nil {
		err = errors.Join(err, fmt.Errorf("finish run: %w", ferr))
	}
	return res, err
}

// committer gathers batches and commits them on page boundaries once at
// least limit rows are pending.
type committer struct {
	sink    load.Sink
	runID   string
	limit   int
	log     *slog.Logger
	pending map[string][]arrow.RecordBatch
	rows    int
	commits int
}

func (c *committer) add(ctx context.Context, b transform.Batch) error {
	if b.Mark != nil {
		if c.rows >= c.limit {
			return c.flush(ctx)
		}
		return nil
	}
	if c.pending == nil {
		c.pending = map[string][]arrow.RecordBatch{}
	}
	c.pending[b.Table] = append(c.pending[b.Table], b.Rec)
	c.rows += int(b.Rec.NumRows())
	return nil
}

func (c *committer) flush(ctx context.Context) error {
	if c.rows == 0 {
		return nil
	}
	start := time.Now()
	err := c.sink.Commit(ctx, &load.Commit{RunID: c.runID, Records: c.pending})
	c.log.Debug("commit", "rows", c.rows, "took", time.Since(start), "err", err)
	c.release()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	c.commits++
	return nil
}

func (c *committer) release() {
	for _, recs := range c.pending {
		for _, r := range recs {
			r.Release()
		}
	}
	c.pending, c.rows = nil, 0
}

func releaseBatch(b transform.Batch) {
	if b.Rec != nil {
		b.Rec.Release()
	}
}
