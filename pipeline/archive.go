package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
)

// The raw archive keeps, beside the warehouse, what each run read from the
// API before any mapping: the records exactly as the API sent them, the
// marks that tell the committer what they complete, the state each pipe
// started from, and the request metadata of every call. Remap replays it
// through transform and load to rebuild the warehouse without the API.
//
// Layout: <dir>/<run id>/run.json (the run, written when it starts),
// <dir>/<run id>/<location>.jsonl.zst (one zstd stream of JSON lines per
// location, append-only, flushed and fsynced before every commit that
// covers its lines), <dir>/<run id>/end.json (the outcome).
//
// No line holds a request header: tokens never reach the archive.

// archiveVersion is the format of run.json and the lines.
const archiveVersion = 1

// Archive line types.
const (
	lineRequest = "req"  // an API call's metadata
	linePipe    = "pipe" // a pipe starts: its windows, watermark, zone
	lineRecord  = "rec"  // a record as extract streamed it
	lineMark    = "mark" // a mark
)

// archiveRun is run.json.
type archiveRun struct {
	Version   int      `json:"version"`
	Run       load.Run `json:"run"`
	Options   Options  `json:"options"`
	BatchRows int      `json:"batch_rows"`
}

// archiveLine is one line of a location's file.
type archiveLine struct {
	T  string    `json:"t"`
	At time.Time `json:"at"`

	// lineRequest
	Method   string          `json:"method,omitempty"`
	Path     string          `json:"path,omitempty"`
	Query    string          `json:"query,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	Status   int             `json:"status,omitempty"`
	TookMS   int64           `json:"took_ms,omitempty"`
	Attempts int             `json:"attempts,omitempty"`

	// linePipe
	Location  string        `json:"loc,omitempty"`
	Kind      string        `json:"kind,omitempty"` // windows, records (a sweep, targets)
	Windows   []load.Window `json:"windows,omitempty"`
	Watermark time.Time     `json:"watermark,omitzero"`
	Pending   []string      `json:"pending,omitempty"`
	Zone      string        `json:"zone,omitempty"`

	// lineRecord
	Resource  string `json:"r,omitempty"`
	ContactID string `json:"c,omitempty"`
	Text      string `json:"s,omitempty"` // the raw JSON, when valid UTF-8
	Bytes     []byte `json:"b,omitempty"` // the raw bytes otherwise
	Problem   string `json:"p,omitempty"`

	// lineMark
	Mark *api.Mark `json:"m,omitempty"`
}

// Archive writes the raw archive of one run. Use NewArchive, hand
// Observer to each location's client, and set Job.Archive; Run begins and
// ends it. Safe for concurrent use.
type Archive struct {
	dir string

	mu    sync.Mutex
	run   string // "" until the run begins
	files map[string]*archiveFile
	err   error // the first write error: the run fails at its next commit
}

type archiveFile struct {
	mu  sync.Mutex
	f   *os.File
	enc *zstd.Encoder
	buf []byte
}

// NewArchive returns the archive kept in dir (created when a run begins).
func NewArchive(dir string) *Archive { return &Archive{dir: dir, files: map[string]*archiveFile{}} }

// Dir is the archive's folder.
func (a *Archive) Dir() string { return a.dir }

// Observer returns the request observer of a location's client
// (extract.WithObserver): it archives each call's metadata once the run
// has begun.
func (a *Archive) Observer(location string) func(extract.Exchange) {
	return func(x extract.Exchange) {
		l := archiveLine{T: lineRequest, At: x.At, Method: x.Method, Path: x.Path, Query: x.Query,
			Status: x.Status, TookMS: x.Took.Milliseconds(), Attempts: x.Attempts}
		if json.Valid(x.Body) {
			l.Body = x.Body
		}
		a.write(location, l)
	}
}

// begin creates the run's folder and run.json.
func (a *Archive) begin(run load.Run, opt Options, batchRows int) error {
	dir := filepath.Join(a.dir, run.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	b, err := json.MarshalIndent(archiveRun{Version: archiveVersion, Run: run, Options: opt, BatchRows: batchRows}, "", "  ")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := writeSynced(filepath.Join(dir, "run.json"), b); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := syncDir(a.dir); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	a.mu.Lock()
	a.run = run.ID
	a.mu.Unlock()
	return nil
}

// end closes every location's file and writes end.json.
func (a *Archive) end(res load.RunResult) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == "" {
		return nil
	}
	errs := []error{a.err}
	for loc, f := range a.files {
		errs = append(errs, f.close())
		delete(a.files, loc)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err == nil {
		err = writeSynced(filepath.Join(a.dir, a.run, "end.json"), b)
	}
	errs = append(errs, err)
	a.run = ""
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// abandon removes the folder of a run that never started: it read nothing.
func (a *Archive) abandon() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == "" {
		return
	}
	_ = os.RemoveAll(filepath.Join(a.dir, a.run))
	a.run = ""
}

// pipe records the start of a pipe of a location.
func (a *Archive) pipe(location, kind string, wins []*Window, watermark time.Time, pending map[string]bool, zone *time.Location) {
	l := archiveLine{T: linePipe, At: time.Now().UTC(), Location: location, Kind: kind, Watermark: watermark, Zone: zone.String()}
	for _, w := range wins {
		l.Windows = append(l.Windows, w.Window)
	}
	for id := range pending {
		l.Pending = append(l.Pending, id)
	}
	a.write(location, l)
}

// record archives one item of a location's record stream.
func (a *Archive) record(location string, r api.Record) {
	l := archiveLine{At: time.Now().UTC()}
	if r.Mark != nil {
		l.T, l.Mark = lineMark, r.Mark
	} else {
		l.T, l.Resource, l.ContactID, l.Problem = lineRecord, r.Resource, r.ContactID, r.Problem
		if utf8.Valid(r.Raw) {
			l.Text = string(r.Raw)
		} else {
			l.Bytes = r.Raw
		}
	}
	a.write(location, l)
}

func (a *Archive) write(location string, l archiveLine) {
	a.mu.Lock()
	if a.run == "" || a.err != nil {
		a.mu.Unlock()
		return
	}
	f, ok := a.files[location]
	if !ok {
		var err error
		if f, err = openArchiveFile(filepath.Join(a.dir, a.run, archiveFileName(location))); err != nil {
			a.err = err
			a.mu.Unlock()
			return
		}
		a.files[location] = f
	}
	a.mu.Unlock()
	if err := f.write(l); err != nil {
		a.mu.Lock()
		a.err = errors.Join(a.err, err)
		a.mu.Unlock()
	}
}

// sync makes a location's lines so far durable: called before every
// commit, so the warehouse is never ahead of its archive.
func (a *Archive) sync(location string) error {
	a.mu.Lock()
	f, err := a.files[location], a.err
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if f == nil {
		return nil
	}
	if err := f.sync(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// archiveFileName is the file of a location's lines; location ids are
// the API's (letters and digits), anything else is replaced.
func archiveFileName(location string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, location)
	return safe + ".jsonl.zst"
}

func openArchiveFile(path string) (*archiveFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err == nil {
		err = syncDir(filepath.Dir(path)) // the new name survives a crash too
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &archiveFile{f: f, enc: enc}, nil
}

func (f *archiveFile) write(l archiveLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enc == nil {
		return errors.New("archive file closed")
	}
	_, err = f.enc.Write(append(b, '\n'))
	return err
}

func (f *archiveFile) sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enc == nil {
		return nil
	}
	if err := f.enc.Flush(); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *archiveFile) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enc == nil {
		return nil
	}
	err := errors.Join(f.enc.Close(), f.f.Sync(), f.f.Close())
	f.enc = nil
	return err
}

// syncDir fsyncs a folder, making the names created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// writeSynced writes a small file and fsyncs it (and its folder).
func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
