// Package transform maps the API's raw JSON records to typed Arrow record
// batches, one schema per warehouse table (package sql), and turns records
// it cannot map into reject rows with the raw JSON and a reason. It knows
// nothing of HTTP or of the warehouse.
package transform

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/contacts-etl/contacts-etl/extract/api"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// DefaultBatchRows bounds the rows of one record batch.
const DefaultBatchRows = 10_000

// Config of a Stage. ExtractedAt stamps every row's _extracted_at.
type Config struct {
	Source      string
	RunID       string
	ExtractedAt time.Time
	BatchRows   int
	NaiveZone   *time.Location // zone of zone-less times; UTC if nil
	Mem         memory.Allocator
}

// Batch is one item of the stage's output: a record of Table, or a Mark
// passed through after every row before it was flushed. The receiver owns
// Rec and releases it.
type Batch struct {
	Table string
	Rec   arrow.RecordBatch
	Mark  *api.Mark
}

// Counts are rows built per table and rejects.
type Counts map[string]int64

// Stage turns a stream of api.Record into Batches. Not safe for concurrent
// use: run one Stage per stream.
type Stage struct {
	cfg    Config
	out    map[string]*rows
	loc    string
	counts Counts
}

// New returns a stage. Release it with Close.
func New(cfg Config) *Stage {
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	if cfg.NaiveZone == nil {
		cfg.NaiveZone = time.UTC
	}
	if cfg.Mem == nil {
		cfg.Mem = memory.DefaultAllocator
	}
	cfg.ExtractedAt = cfg.ExtractedAt.UTC()
	s := &Stage{cfg: cfg, out: map[string]*rows{}, counts: Counts{}}
	for _, t := range append(whsql.Data, whsql.Rejects) {
		s.out[t.Name] = newRows(cfg.Mem, t.Schema)
	}
	return s
}

// Close releases the builders. Unflushed rows are dropped.
func (s *Stage) Close() {
	for _, r := range s.out {
		r.release()
	}
}

// Counts returns rows emitted so far per table ("rejects" included).
func (s *Stage) Counts() Counts { return s.counts }

// Run reads in until it is closed, sending batches to out, and flushes what
// is left. It returns ctx's error if cancelled. It does not close out.
func (s *Stage) Run(ctx context.Context, in <-chan api.Record, out chan<- Batch) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r, ok := <-in:
			if !ok {
				return s.flushAll(ctx, out)
			}
			if err := s.Add(ctx, r, out); err != nil {
				return err
			}
		}
	}
}

// Add maps one record (or passes a Mark on after flushing everything).
func (s *Stage) Add(ctx context.Context, r api.Record, out chan<- Batch) error {
	if r.Mark != nil {
		if err := s.flushAll(ctx, out); err != nil {
			return err
		}
		return emit(ctx, out, Batch{Mark: r.Mark})
	}
	s.loc = r.LocationID
	table := r.Resource
	var err error
	switch {
	case r.Problem != "":
		err = fmt.Errorf("%s", r.Problem)
	case r.Resource == api.ResourceContacts:
		err = s.contact(r.Raw)
	case r.Resource == api.ResourceTasks:
		err = s.task(r.Raw, r.ContactID)
	case r.Resource == api.ResourceNotes:
		err = s.note(r.Raw, r.ContactID)
	case r.Resource == api.ResourceAppointments:
		err = s.appointment(r.Raw, r.ContactID)
	default:
		err = fmt.Errorf("unknown resource %q", r.Resource)
	}
	if err != nil {
		s.reject(r, err)
		table = whsql.Rejects.Name
	}
	s.counts[table]++
	if rw := s.out[table]; rw.n >= s.cfg.BatchRows {
		return s.flush(ctx, table, out)
	}
	return nil
}

func (s *Stage) reject(r api.Record, reason error) {
	raw := string(r.Raw)
	if len(raw) > whsql.RejectRawMax {
		raw = raw[:whsql.RejectRawMax]
	}
	raw = strings.ToValidUTF8(raw, "\uFFFD")
	s.out[whsql.Rejects.Name].add(
		r.Resource, recordID(r.Raw), r.ContactID, reason.Error(), raw, int64(len(r.Raw)),
		s.cfg.Source, r.LocationID, s.cfg.RunID, s.cfg.ExtractedAt,
	)
}

func (s *Stage) flushAll(ctx context.Context, out chan<- Batch) error {
	for _, t := range append(whsql.Data, whsql.Rejects) {
		if err := s.flush(ctx, t.Name, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stage) flush(ctx context.Context, table string, out chan<- Batch) error {
	rec := s.out[table].flush()
	if rec == nil {
		return nil
	}
	if err := emit(ctx, out, Batch{Table: table, Rec: rec}); err != nil {
		rec.Release()
		return err
	}
	return nil
}

func emit(ctx context.Context, out chan<- Batch, b Batch) error {
	select {
	case out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
