package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// The inbox is a folder beside the warehouse (never the warehouse itself,
// which stays closed between commits):
//
//	lock          flock held by the one process that appends and applies
//	log-<gen>     append-only records: u32 length, u32 CRC-32C of the
//	              payload, payload = i64 receive time (unix ns) + raw body
//	applied       JSON {gen, offset, last apply}, replaced atomically
//	              (write, fsync, rename, fsync folder)
//
// An event is acknowledged only after its record and the log are fsynced.
// Records before the applied offset are applied; a torn tail (a crash in
// mid-write, never acknowledged) is cut off when the inbox is opened.
// Compaction writes log-<gen+1> with the unapplied records (and the applied
// ones still inside the replay window, so replays stay detectable), then
// points applied at it: a crash in between leaves the old generation valid.

// Errors of Inbox.Add; the receiver answers 409 (replay) or 429 (the rest).
var (
	ErrReplay = errors.New("webhook: replayed webhookId")
	ErrFull   = errors.New("webhook: inbox full")
	ErrBehind = errors.New("webhook: apply is behind")
	ErrClosed = errors.New("webhook: inbox closed")
	// ErrBusy: another process (a running serve) holds the inbox.
	ErrBusy = errors.New("webhook: inbox held by another process")
)

// Defaults of InboxOptions.
const (
	DefaultMaxPending   = 100_000
	DefaultMaxLag       = 10 * time.Minute
	DefaultReplayWindow = 10 * time.Minute // > the 5 min staleness bound
	DefaultCompactBytes = 64 << 20
)

const (
	headerLen  = 8
	maxRecord  = 16 << 20
	appliedFn  = "applied"
	lockFn     = "lock"
	logPrefix  = "log-"
	writeBatch = 512
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// InboxDir is the inbox folder of a warehouse: beside it, never inside.
func InboxDir(warehousePath string) string {
	return strings.TrimRight(warehousePath, string(filepath.Separator)) + ".inbox"
}

// InboxOptions bound an inbox. Zero values take the defaults.
type InboxOptions struct {
	// MaxPending is how many unapplied events the inbox holds before Add
	// answers ErrFull.
	MaxPending int
	// MaxLag: when the oldest unapplied event was received longer ago than
	// this, Add answers ErrBehind (the apply cannot keep up).
	MaxLag time.Duration
	// ReplayWindow is how long a webhookId is remembered (it must exceed
	// the receiver's staleness bound).
	ReplayWindow time.Duration
	// CompactBytes: MarkApplied compacts the log when its applied prefix
	// is at least this long.
	CompactBytes int64
	Now          func() time.Time
}

func (o *InboxOptions) defaults() {
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxLag <= 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.ReplayWindow <= 0 {
		o.ReplayWindow = DefaultReplayWindow
	}
	if o.CompactBytes <= 0 {
		o.CompactBytes = DefaultCompactBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// LastApply describes the last apply that committed.
type LastApply struct {
	At       time.Time `json:"at"`
	Events   int       `json:"events"`
	Contacts int       `json:"contacts"`
	// Unresolved: events naming no contact (TaskCreate without contactId),
	// left to the scheduled run. Ignored: unknown types or locations.
	Unresolved int    `json:"unresolved"`
	Ignored    int    `json:"ignored"`
	RunID      string `json:"run_id,omitempty"`
}

type appliedState struct {
	Gen    int64      `json:"gen"`
	Offset int64      `json:"offset"`
	Last   *LastApply `json:"last,omitempty"`
}

// Record is one durable event.
type Record struct {
	Offset   int64 // where the record starts in its generation's log
	End      int64 // where the next one starts
	Received time.Time
	Body     []byte // the raw, verified body
}

type pendingMeta struct {
	off, end int64
	recv     time.Time
}

type appendReq struct {
	payload []byte
	recv    time.Time
	done    chan error
}

// Inbox is the durable queue of verified events. Its methods are safe for
// concurrent use; one process at a time holds it (OpenInbox fails with
// ErrBusy otherwise).
type Inbox struct {
	dir  string
	opt  InboxOptions
	lock *flock.Flock

	wmu  sync.Mutex // held while writing or compacting the log
	f    *os.File
	size int64

	mu       sync.Mutex // guards the fields below
	st       appliedState
	pending  []pendingMeta
	inflight int
	seen     map[string]time.Time // webhookId → event time, for replays
	closed   bool
	broken   error

	reqs chan appendReq
	quit chan struct{}
	wg   sync.WaitGroup
}

// OpenInbox opens (creating it if needed) the inbox in dir, cutting off a
// torn tail, and starts its writer. Close releases it.
func OpenInbox(dir string, opt InboxOptions) (*Inbox, error) {
	opt.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	lk := flock.New(filepath.Join(dir, lockFn))
	ok, err := lk.TryLock()
	if err != nil {
		return nil, fmt.Errorf("inbox lock: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBusy, dir)
	}
	in := &Inbox{dir: dir, opt: opt, lock: lk, seen: map[string]time.Time{}, reqs: make(chan appendReq, writeBatch), quit: make(chan struct{})}
	if err := in.load(); err != nil {
		_ = lk.Unlock()
		return nil, err
	}
	in.wg.Add(1)
	go in.writer()
	return in, nil
}

func readApplied(dir string) (appliedState, error) {
	var st appliedState
	b, err := os.ReadFile(filepath.Join(dir, appliedFn))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("inbox: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("inbox: applied file: %w", err)
	}
	return st, nil
}

func logName(dir string, gen int64) string {
	return filepath.Join(dir, logPrefix+strconv.FormatInt(gen, 10))
}

// scan reads the valid records of r from 0, calling fn for each; it
// returns the end of the last valid record.
func scan(r io.Reader, fn func(Record)) (int64, error) {
	br := bufioReader(r)
	var off int64
	var h [headerLen]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return off, nil
		}
		n := binary.LittleEndian.Uint32(h[:4])
		if n < 8 || n > maxRecord {
			return off, nil
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return off, nil
		}
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
			return off, nil
		}
		end := off + headerLen + int64(n)
		fn(Record{Offset: off, End: end, Received: time.Unix(0, int64(binary.LittleEndian.Uint64(p[:8]))), Body: p[8:]})
		off = end
	}
}

func (in *Inbox) load() error {
	st, err := readApplied(in.dir)
	if err != nil {
		return err
	}
	in.st = st
	// Generations other than the applied one are leftovers of a compaction.
	ents, _ := os.ReadDir(in.dir)
	for _, e := range ents {
		if g, ok := strings.CutPrefix(e.Name(), logPrefix); ok && g != strconv.FormatInt(st.Gen, 10) {
			_ = os.Remove(filepath.Join(in.dir, e.Name()))
		}
	}
	f, err := os.OpenFile(logName(in.dir, st.Gen), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	now := in.opt.Now()
	end, err := scan(f, func(r Record) {
		if id, ts, ok := idOf(r.Body); ok && now.Sub(ts) < in.opt.ReplayWindow {
			in.seen[id] = ts
		}
		if r.Offset >= st.Offset {
			in.pending = append(in.pending, pendingMeta{off: r.Offset, end: r.End, recv: r.Received})
		}
	})
	if err == nil && end < st.Offset {
		err = fmt.Errorf("inbox: log %s ends at %d before the applied offset %d", f.Name(), end, st.Offset)
	}
	if err == nil {
		err = f.Truncate(end) // a torn tail was never acknowledged
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		_, err = f.Seek(end, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("inbox: %w", err)
	}
	in.f, in.size = f, end
	return nil
}

// idOf reads an event's webhookId and timestamp (for the replay set).
func idOf(body []byte) (string, time.Time, bool) {
	ev, err := ParseEvent(body)
	if err != nil || ev.WebhookID == "" {
		return "", time.Time{}, false
	}
	return ev.WebhookID, ev.Timestamp, true
}

// Add makes one verified event durable: it returns nil only after the
// record is fsynced. ErrReplay when webhookID was seen (or is being
// written), ErrFull or ErrBehind when the inbox cannot take it now.
func (in *Inbox) Add(ctx context.Context, webhookID string, ts time.Time, body []byte) error {
	now := in.opt.Now()
	in.mu.Lock()
	switch {
	case in.closed:
		in.mu.Unlock()
		return ErrClosed
	case in.broken != nil:
		in.mu.Unlock()
		return in.broken
	case webhookID != "" && !in.seen[webhookID].IsZero():
		in.mu.Unlock()
		return ErrReplay
	case len(in.pending)+in.inflight >= in.opt.MaxPending:
		in.mu.Unlock()
		return ErrFull
	case len(in.pending) > 0 && now.Sub(in.pending[0].recv) > in.opt.MaxLag:
		in.mu.Unlock()
		return ErrBehind
	}
	if webhookID != "" {
		in.seen[webhookID] = ts
	}
	in.inflight++
	in.mu.Unlock()

	payload := make([]byte, 8+len(body))
	binary.LittleEndian.PutUint64(payload, uint64(now.UnixNano()))
	copy(payload[8:], body)
	req := appendReq{payload: payload, recv: now, done: make(chan error, 1)}
	// Once admitted (inflight counted), the request is always sent and
	// always answered: the writer runs until inflight is zero.
	in.reqs <- req
	err := <-req.done
	if err != nil && webhookID != "" {
		in.mu.Lock()
		delete(in.seen, webhookID)
		in.mu.Unlock()
	}
	return err
}

// writer appends queued records in batches: one write and one fsync per
// batch (group commit), then answers every request of the batch. After
// Close it still writes what was admitted, then returns.
func (in *Inbox) writer() {
	defer in.wg.Done()
	var buf bytes.Buffer
	for {
		var batch []appendReq
		select {
		case r := <-in.reqs:
			batch = append(batch, r)
		case <-in.quit:
			in.mu.Lock()
			n := in.inflight
			in.mu.Unlock()
			if n == 0 {
				return
			}
			batch = append(batch, <-in.reqs)
		}
	more:
		for len(batch) < writeBatch {
			select {
			case r := <-in.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := in.write(&buf, batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (in *Inbox) write(buf *bytes.Buffer, batch []appendReq) error {
	buf.Reset()
	metas := make([]pendingMeta, len(batch))
	in.wmu.Lock()
	off := in.size
	for i, r := range batch {
		var h [headerLen]byte
		binary.LittleEndian.PutUint32(h[:4], uint32(len(r.payload)))
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(r.payload, castagnoli))
		buf.Write(h[:])
		buf.Write(r.payload)
		end := off + headerLen + int64(len(r.payload))
		metas[i] = pendingMeta{off: off, end: end, recv: r.recv}
		off = end
	}
	_, err := in.f.Write(buf.Bytes())
	if err == nil {
		err = in.f.Sync()
	}
	var broken error
	if err != nil {
		// Cut the failed batch off so later records stay contiguous; if
		// that fails too, the inbox refuses everything from now on.
		if terr := in.f.Truncate(in.size); terr != nil {
			broken = fmt.Errorf("inbox: log unusable after a failed write: %w", terr)
		}
		_, _ = in.f.Seek(in.size, io.SeekStart)
		err = fmt.Errorf("inbox append: %w", err)
	} else {
		in.size = off
	}
	in.wmu.Unlock()
	in.mu.Lock()
	if err == nil {
		in.pending = append(in.pending, metas...)
	}
	if broken != nil {
		in.broken = broken
	}
	in.inflight -= len(batch)
	in.mu.Unlock()
	return err
}

// Batch is a snapshot of the unapplied records.
type Batch struct {
	Gen     int64
	Records []Record
	End     int64 // MarkApplied(End) marks exactly these records applied
}

// Unapplied reads the durable, unapplied records (at most max; 0: all).
func (in *Inbox) Unapplied(max int) (Batch, error) {
	in.wmu.Lock() // no compaction while reading
	defer in.wmu.Unlock()
	in.mu.Lock()
	metas := in.pending
	if max > 0 && len(metas) > max {
		metas = metas[:max]
	}
	metas = append([]pendingMeta(nil), metas...)
	b := Batch{Gen: in.st.Gen, End: in.st.Offset}
	in.mu.Unlock()
	if len(metas) == 0 {
		return b, nil
	}
	start, end := metas[0].off, metas[len(metas)-1].end
	raw := make([]byte, end-start)
	if _, err := in.f.ReadAt(raw, start); err != nil {
		return b, fmt.Errorf("inbox read: %w", err)
	}
	if _, err := scan(bytes.NewReader(raw), func(r Record) {
		r.Offset += start
		r.End += start
		b.Records = append(b.Records, r)
	}); err != nil {
		return b, err
	}
	if len(b.Records) != len(metas) {
		return b, fmt.Errorf("inbox read: %d records where %d were written", len(b.Records), len(metas))
	}
	b.End = end
	return b, nil
}

// MarkApplied records that every record of b is applied (call it after
// the warehouse commit), with what the apply did; then it may compact.
func (in *Inbox) MarkApplied(b Batch, last LastApply) error {
	in.wmu.Lock()
	defer in.wmu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if b.Gen != in.st.Gen || b.End < in.st.Offset {
		return fmt.Errorf("inbox: stale batch (gen %d offset %d, inbox at gen %d offset %d)", b.Gen, b.End, in.st.Gen, in.st.Offset)
	}
	st := appliedState{Gen: in.st.Gen, Offset: b.End, Last: &last}
	if err := writeApplied(in.dir, st); err != nil {
		return err
	}
	in.st = st
	i := 0
	for i < len(in.pending) && in.pending[i].end <= b.End {
		i++
	}
	in.pending = append(in.pending[:0:0], in.pending[i:]...)
	now := in.opt.Now()
	for id, ts := range in.seen {
		if now.Sub(ts) >= in.opt.ReplayWindow {
			delete(in.seen, id)
		}
	}
	if st.Offset >= in.opt.CompactBytes {
		return in.compact()
	}
	return nil
}

// compact writes the next generation; wmu and mu are held.
func (in *Inbox) compact() error {
	now := in.opt.Now()
	next := in.st.Gen + 1
	name := logName(in.dir, next)
	nf, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("inbox compact: %w", err)
	}
	fail := func(err error) error {
		nf.Close()
		_ = os.Remove(name)
		return fmt.Errorf("inbox compact: %w", err)
	}
	old := in.st.Offset
	var kept bytes.Buffer
	if _, err := in.f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	if _, err := scan(io.LimitReader(in.f, old), func(r Record) {
		if _, ts, ok := idOf(r.Body); ok && now.Sub(ts) < in.opt.ReplayWindow {
			kept.Write(encode(r))
		}
	}); err != nil {
		return fail(err)
	}
	newOff := int64(kept.Len())
	tail := make([]byte, in.size-old)
	if _, err := in.f.ReadAt(tail, old); err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	kept.Write(tail)
	if _, err := nf.Write(kept.Bytes()); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := syncDir(in.dir); err != nil {
		return fail(err)
	}
	st := appliedState{Gen: next, Offset: newOff, Last: in.st.Last}
	if err := writeApplied(in.dir, st); err != nil {
		return fail(err)
	}
	oldName := in.f.Name()
	in.f.Close()
	in.f, in.size, in.st = nf, int64(kept.Len()), st
	if _, err := nf.Seek(in.size, io.SeekStart); err != nil {
		in.broken = fmt.Errorf("inbox compact: %w", err)
	}
	for i := range in.pending {
		in.pending[i].off += newOff - old
		in.pending[i].end += newOff - old
	}
	_ = os.Remove(oldName)
	return nil
}

func encode(r Record) []byte {
	p := make([]byte, 8+len(r.Body))
	binary.LittleEndian.PutUint64(p, uint64(r.Received.UnixNano()))
	copy(p[8:], r.Body)
	out := make([]byte, headerLen, headerLen+len(p))
	binary.LittleEndian.PutUint32(out[:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(p, castagnoli))
	return append(out, p...)
}

func writeApplied(dir string, st appliedState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, appliedFn+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, appliedFn))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("inbox: applied offset: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Stats is the observable state of an inbox.
type Stats struct {
	Depth          int       // unapplied events
	OldestReceived time.Time // of the oldest unapplied event (zero: none)
	Last           *LastApply
}

// Stats reports the inbox's depth, oldest unapplied event and last apply.
func (in *Inbox) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := Stats{Depth: len(in.pending), Last: in.st.Last}
	if len(in.pending) > 0 {
		s.OldestReceived = in.pending[0].recv
	}
	return s
}

// Ready reports whether Add can take events now.
func (in *Inbox) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.closed:
		return ErrClosed
	case in.broken != nil:
		return in.broken
	case len(in.pending)+in.inflight >= in.opt.MaxPending:
		return ErrFull
	}
	return nil
}

// Close stops the writer after answering what it was given, and releases
// the inbox. Every Add that returned nil is durable.
func (in *Inbox) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.mu.Unlock()
	close(in.quit)
	in.wg.Wait()
	in.wmu.Lock()
	err := in.f.Close()
	in.wmu.Unlock()
	_ = in.lock.Unlock()
	return err
}

// ReadStats reads an inbox's state without taking it (a serve may hold
// it): for status. A missing inbox has zero Stats.
func ReadStats(dir string) (Stats, error) {
	var s Stats
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	st, err := readApplied(dir)
	if err != nil {
		return s, err
	}
	s.Last = st.Last
	f, err := os.Open(logName(dir, st.Gen))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil // compacted in between, or never written
	}
	if err != nil {
		return s, fmt.Errorf("inbox: %w", err)
	}
	defer f.Close()
	_, err = scan(f, func(r Record) {
		if r.Offset >= st.Offset {
			if s.Depth == 0 {
				s.OldestReceived = r.Received
			}
			s.Depth++
		}
	})
	return s, err
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
