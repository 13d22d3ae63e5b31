// Package load writes Arrow record batches to a warehouse (DuckDB or
// Parquet) and keeps the exporter's state there: runs, watermarks and the
// window ledger. It knows nothing of HTTP or of the API's JSON.
package load

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Sink is a warehouse. A run calls Start once, Commit any number of times and
// Finish once, then Close. A Sink is not safe for concurrent use.
//
// Each Commit is atomic: either every row and every state change in it is
// visible afterwards, or none is (a crash or an error leaves the warehouse as
// it was before the call). Rows are merged by their table's key: a key that
// exists is replaced by the newest version, never duplicated. Rejects are
// appended.
type Sink interface {
	// Store reads the state the sink keeps besides the ledger Start
	// returns: every sink implements it; none turns a feature off.
	Store
	// Start records the run (outcome "running") and returns the state
	// committed by earlier runs for run.Source. Runs of run.Source still
	// "running" are closed as "aborted": the caller holds the warehouse's
	// run lock, so their process is gone.
	Start(ctx context.Context, run Run) (*State, error)
	// Commit merges c's records and applies its state changes in one
	// transaction. It does not take ownership of the records: the caller
	// releases them after Commit returns.
	Commit(ctx context.Context, c *Commit) error
	// Finish records the run's outcome and counters.
	Finish(ctx context.Context, res RunResult) error
	// Close releases everything the sink holds. The warehouse file is not
	// held open between calls, so Close is cheap.
	Close(ctx context.Context) error
}

// Store is what a run reads of the warehouse to decide what to fetch, and
// what `status` shows. Reads open the warehouse like a commit does; they
// are not safe for concurrent use with the sink's other calls.
type Store interface {
	// EachLiveContact calls fn with each contact of one location that is
	// in the warehouse and not soft-deleted, and its updated_at in epoch ms
	// (0 when unknown), one at a time, so that no reader holds them all. The
	// order is unspecified: sorting them in the query cost DuckDB more
	// memory than the caller saves (measured at 500k contacts, issue 10).
	// It stops at fn's first error and returns it. fn runs while the
	// warehouse is open: it must not call the sink.
	EachLiveContact(ctx context.Context, source, location string, fn func(id string, updatedMs int64) error) error
	// LiveIDs returns the keys of the rows of one location in table (a
	// child table: tasks, notes or appointments) that are not
	// soft-deleted. With from and to set, only appointments whose
	// start_time is in [from, to) are returned.
	LiveIDs(ctx context.Context, source, location, table string, from, to time.Time) ([]string, error)
	// LiveChildren returns the keys of the rows of one location in table (a
	// child table) that belong to one of contactIDs and are not
	// soft-deleted.
	LiveChildren(ctx context.Context, source, location, table string, contactIDs []string) ([]string, error)
	// SweepCandidates returns up to n live contacts of a location whose
	// children were last read before sweptBefore, longest ago first
	// (never-swept first, then by id), and how many live contacts the
	// location has.
	SweepCandidates(ctx context.Context, source, location string, n int, sweptBefore time.Time) (ids []string, live int, err error)
	// LastReconcile returns when the location was last reconciled (zero if
	// never).
	LastReconcile(ctx context.Context, source, location string) (time.Time, error)
	// Status reads what `contacts-etl status` shows of source.
	Status(ctx context.Context, source string) (*Status, error)
	// PendingRetries returns the retry rows of one location (see
	// Commit.Retries) with Attempts < maxAttempts, by FirstAt then
	// ContactID; At is zero. maxAttempts <= 0 returns none.
	PendingRetries(ctx context.Context, source, location string, maxAttempts int) ([]Retry, error)
	// Probes returns the remembered bulk probe refusals of one location
	// (see Commit.Probes), by TokenID then Resource.
	Probes(ctx context.Context, source, location string) ([]Probe, error)
}

// Probe is a bulk probe of Resource that the location's token, known by
// TokenID (a non-secret identity, never the token), was refused At, with
// the Reason.
type Probe struct {
	Source, LocationID, TokenID, Resource string
	Reason                                string
	At                                    time.Time
}

// Run identifies one execution of the exporter.
type Run struct {
	ID        string
	Source    string
	Command   string // run, backfill, demo
	StartedAt time.Time
}

// Commit is one atomic unit: rows for any of the tables of package sql
// (keyed by table name; each record has exactly that table's schema) and the
// state that covers them.
//
// Deletes soft-delete rows by key after the records are merged: the rows
// keep their values and get _deleted_at set. Watermarks and Windows replace
// the entries with the same key (a Watermark by source, location and
// resource; a Window by those and Start).
type Commit struct {
	RunID      string
	Records    map[string][]arrow.RecordBatch
	Deletes    []Delete
	Watermarks []Watermark
	Windows    []Window
	// Swept records, per contact, when its children were last read in
	// full (by a window's fan-out or by the rolling sweep).
	Swept []Swept
	// Reconciled records id-only reconciliations of a location.
	Reconciled []Reconcile
	// RetriesDone removes the retry rows of contacts whose re-read landed
	// without a new reject. Keys without a row are ignored. They are
	// applied before Retries.
	RetriesDone []RetryKey
	// Retries records contacts to read again because a record of theirs
	// was rejected. Each upserts the row of its key (Source, LocationID,
	// ContactID): a new row gets Attempts 1 and FirstAt = LastAt = At; an
	// existing one gets Attempts + 1, LastAt = At and this Retry's
	// Resource, RecordID, Reason and RunID. Retries of one key within one
	// commit count as one attempt (the last one's fields win). The
	// Attempts, FirstAt and LastAt given here are ignored. A location keeps
	// at most MaxRetriesPerLocation rows: beyond that the commit drops
	// rows with the most attempts first (exhausted before pending, for any
	// limit), then the least recently attempted, then by ContactID.
	Retries []Retry
	// Probes upserts remembered probe refusals by (Source, LocationID,
	// TokenID, Resource).
	Probes []Probe
}

// MaxRetriesPerLocation bounds the retry rows each (source, location)
// keeps; see Commit.Retries.
const MaxRetriesPerLocation = 10_000

// Retry is one contact to read again because a record of it (the contact
// itself or a child: Resource, RecordID) was rejected for Reason. In a
// Commit, Source, LocationID, ContactID and At (the time of this attempt)
// are required. Read back, a row has Attempts (how many commits recorded
// a reject of it), FirstAt and LastAt (the first and latest attempt's At,
// in UTC to the microsecond) and the RunID of the latest attempt.
type Retry struct {
	Source, LocationID, ContactID string
	Resource, RecordID, Reason    string
	RunID                         string
	Attempts                      int
	FirstAt, LastAt               time.Time
	At                            time.Time
}

// Key is r's key.
func (r Retry) Key() RetryKey {
	return RetryKey{Source: r.Source, LocationID: r.LocationID, ContactID: r.ContactID}
}

// RetryKey names one retry row.
type RetryKey struct {
	Source, LocationID, ContactID string
}

// Swept says the children of ContactIDs were all read at At.
type Swept struct {
	Source     string
	LocationID string
	ContactIDs []string
	At         time.Time
	RunID      string
}

// Reconcile is one id-only reconciliation of a location: Listed contacts
// were live upstream at At, Deleted were soft-deleted for having vanished.
type Reconcile struct {
	Source          string
	LocationID      string
	At              time.Time
	RunID           string
	Listed, Deleted int
}

// Delete marks the rows of Table (one of the data tables) whose key is
// (Source, id) for each id in IDs as deleted at At. IDs that match no row
// are ignored.
type Delete struct {
	Table  string
	Source string
	IDs    []string
	At     time.Time
	// ByContact matches IDs against the table's contact_id column instead
	// of its key: the children of deleted contacts.
	ByContact bool
}

// CommitStats counts what one Commit did, per table name.
type CommitStats struct {
	Tables   map[string]TableStats
	Duration time.Duration
}

// TableStats counts one table's rows in one commit. Staged rows are those
// handed in; Written rows were inserted (new keys and newer versions of
// existing ones); Replaced rows were older versions removed by the merge;
// Deleted rows were soft-deleted. Staged - Written is the number of rows
// dropped as duplicates or as older than the stored version.
type TableStats struct {
	Staged, Written, Replaced, Deleted int64
}

// Watermark is the high-water mark of one (source, location, resource):
// everything updated before Value is in the warehouse.
type Watermark struct {
	Source     string
	LocationID string
	Resource   string
	Value      time.Time
}

// Window is an entry of the ledger: a half-open interval [Start, End) of
// dateUpdated for one (source, location, resource). Status is "open" while a
// window is being fetched (Cursor then holds the last committed page's
// cursor as JSON) and "done" once all of it is committed. Kind says who
// opened it: "run" (incremental), "backfill", or "" (unspecified).
type Window struct {
	Source     string
	LocationID string
	Resource   string
	Start, End time.Time
	Status     string
	Cursor     string
	RunID      string
	Kind       string
}

// State is what earlier runs committed for one source.
type State struct {
	Watermarks []Watermark
	Windows    []Window
}

// RunResult is what Finish records on the run's row.
type RunResult struct {
	RunID       string
	EndedAt     time.Time
	Outcome     string // ok, failed, partial
	Error       string // never contains a secret
	Requests    int64
	Retries     int64
	RateLimited int64 // 429 answers
	Rows        map[string]int64
	Rejects     int64
	// Locations are the per-location request counters (may be nil).
	Locations map[string]LocationStats
}

// Batch runs fn so that the calls on s it makes with the context it is
// given share one opening of the warehouse where the sink can (DuckDB);
// elsewhere it simply runs fn.
func Batch(ctx context.Context, s Store, fn func(context.Context) error) error {
	if b, ok := s.(interface {
		Batch(context.Context, func(context.Context) error) error
	}); ok {
		return b.Batch(ctx, fn)
	}
	return fn(ctx)
}
