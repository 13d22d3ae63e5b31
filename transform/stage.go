// Package transform maps the API's raw JSON records to typed Arrow record
// batches, one schema per warehouse table (package sql). A record with a
// usable id always yields one row: a field it cannot map is NULL and a
// field_rejects row keeps its raw value and the reason; invalid UTF-8 is
// replaced by U+FFFD and flagged the same way. Only a record without a
// usable id becomes a rejects row (raw JSON and reason). It knows nothing
// of HTTP or of the warehouse.
package transform

import (
	"context"
	"fmt"
	"slices"
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
	// NaiveZone is the zone of zone-less times ("2021-07-16 11:00:00"):
	// the time zone of the location this stage maps (one stage per
	// location). UTC if nil. appointments.time_zone records its name.
	NaiveZone *time.Location
	Mem       memory.Allocator
	// DefaultRegion is the region of phone numbers of contacts without a
	// country (an ISO 3166 alpha-2 code); the mapping's default_region
	// (US) if empty.
	DefaultRegion string
}

// Batch is one item of the stage's output: a record of Table, or a Mark
// passed through after every row before it was flushed. The receiver owns
// Rec and releases it. A Mark batch carries in Rejected the records
// rejected whole or in part since the previous Mark (their reject rows
// were flushed before it), so the run can commit them with the Mark and
// read them again later.
type Batch struct {
	Table    string
	Rec      arrow.RecordBatch
	Mark     *api.Mark
	Rejected []Rejected
}

// Rejected is a record that did not land in full: rejected whole (Whole;
// RecordID is "" when it had no usable id), or landed with fields it
// could not map (Fields lists their JSON names; their columns are NULL).
// A record whose only field rejects are mended values (invalid UTF-8
// replaced) landed in full and is not reported. ContactID is the contact
// to read again: the record itself for contacts, the request path's
// contact for children ("" for a contact without a usable id).
type Rejected struct {
	Resource   string
	LocationID string
	RecordID   string
	ContactID  string
	Whole      bool
	Fields     []string
	Reason     string // of a whole reject
}

// Counts are rows built per table name: the data tables, and
// whsql.Rejects.Name and whsql.FieldRejects.Name for reject rows.
type Counts map[string]int64

// Rows is the number of data rows (contacts, tasks, notes, appointments).
func (c Counts) Rows() int64 {
	var n int64
	for _, t := range whsql.Data {
		n += c[t.Name]
	}
	return n
}

// Rejects is the number of records rejected whole.
func (c Counts) Rejects() int64 { return c[whsql.Rejects.Name] }

// FieldRejects is the number of field reject rows.
func (c Counts) FieldRejects() int64 { return c[whsql.FieldRejects.Name] }

// Stage turns a stream of api.Record into Batches. Not safe for concurrent
// use: run one Stage per stream.
type Stage struct {
	cfg      Config
	out      map[string]*rows
	plans    map[string]*plan
	rec      scratch
	defs     map[string]api.CustomFieldDef // custom field definitions by id
	region   string
	loc      string
	counts   Counts
	rejected []Rejected
	seen     []string // custom field ids of the contact being mapped
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
	s := &Stage{cfg: cfg, out: map[string]*rows{}, plans: map[string]*plan{}, counts: Counts{},
		defs: map[string]api.CustomFieldDef{}, region: cfg.DefaultRegion}
	if s.region == "" {
		s.region = whsql.CurrentMapping().DefaultRegion
	}
	for _, t := range whsql.Tables {
		s.out[t.Name] = newRows(cfg.Mem, t.Schema)
	}
	for _, t := range whsql.Data {
		s.plans[t.Name] = newPlan(t)
	}
	return s
}

// Close releases the builders. Unflushed rows are dropped.
func (s *Stage) Close() {
	for _, r := range s.out {
		r.release()
	}
}

// Counts returns rows built so far per table (reject tables included).
func (s *Stage) Counts() Counts { return s.counts }

// Rejected returns the records rejected whole or in part since the last
// Mark passed on (all of them if no Mark followed), and forgets them.
func (s *Stage) Rejected() []Rejected {
	r := s.rejected
	s.rejected = nil
	return r
}

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
		return emit(ctx, out, Batch{Mark: r.Mark, Rejected: s.Rejected()})
	}
	s.loc = r.LocationID
	table := r.Resource
	var (
		id   string
		rejs []fieldReject
		err  error
	)
	p := s.plans[r.Resource]
	switch {
	case r.Problem != "":
		err = fmt.Errorf("%s", r.Problem)
	case r.Resource == api.ResourceCustomFields:
		table = whsql.CustomFieldDefinitions.Name
		id, err = s.customFieldDef(r)
	case p != nil:
		if id, err = p.decode(&s.rec, r.Raw); err == nil {
			s.mapRecord(p, &s.rec, id, r.ContactID)
			s.appendRow(p, &s.rec, s.out[table])
			rejs = s.rec.rej
			if p.cfs >= 0 {
				s.customRows(p, &s.rec, id)
			}
		}
	default:
		err = fmt.Errorf("unknown resource %q", r.Resource)
	}
	if err != nil {
		s.reject(r, err)
		table = whsql.Rejects.Name
	} else if len(rejs) > 0 {
		s.fieldRejects(r, id, rejs)
	}
	s.counts[table]++
	for _, t := range []string{table, whsql.FieldRejects.Name, whsql.ContactCustomFields.Name} {
		if rw := s.out[t]; rw.n >= s.cfg.BatchRows {
			if err := s.flush(ctx, t, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Stage) reject(r api.Record, reason error) {
	raw := string(r.Raw)
	if len(raw) > whsql.RejectRawMax {
		raw = raw[:whsql.RejectRawMax]
	}
	raw = strings.ToValidUTF8(raw, "\uFFFD")
	id := recordID(r.Raw)
	s.out[whsql.Rejects.Name].add(
		r.Resource, id, r.ContactID, reason.Error(), raw, int64(len(r.Raw)),
		s.cfg.Source, r.LocationID, s.cfg.RunID, s.cfg.ExtractedAt, whsql.RejectKey(r.Resource, r.ContactID, r.Raw),
	)
	again := r.ContactID
	if r.Resource == api.ResourceContacts {
		again = ""
	}
	s.rejected = append(s.rejected, Rejected{Resource: r.Resource, LocationID: r.LocationID, RecordID: id,
		ContactID: again, Whole: true, Reason: reason.Error()})
}

// fieldRejects writes one row per field reject of a landed record; a field
// named twice (a value both mended and then unmappable) keeps its last row.
func (s *Stage) fieldRejects(r api.Record, id string, rejs []fieldReject) {
	contact := r.ContactID
	if r.Resource == api.ResourceContacts {
		contact = id
	}
	var lost []string
	for i, fr := range rejs {
		if slices.ContainsFunc(rejs[i+1:], func(o fieldReject) bool { return o.field == fr.field }) {
			continue
		}
		s.out[whsql.FieldRejects.Name].add(
			r.Resource, id, contact, fr.field, fr.column, fr.raw, fr.reason, fr.landed,
			s.cfg.Source, r.LocationID, s.cfg.RunID, s.cfg.ExtractedAt,
		)
		s.counts[whsql.FieldRejects.Name]++
		if !fr.landed {
			lost = append(lost, fr.field)
		}
	}
	if len(lost) > 0 {
		// id (and contact, a contact's own id) may view the record's bytes
		id = strings.Clone(id)
		if r.Resource == api.ResourceContacts {
			contact = id
		}
		s.rejected = append(s.rejected, Rejected{Resource: r.Resource, LocationID: r.LocationID, RecordID: id,
			ContactID: contact, Fields: lost})
	}
}

func (s *Stage) flushAll(ctx context.Context, out chan<- Batch) error {
	for _, t := range whsql.Tables {
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
