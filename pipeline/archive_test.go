package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
)

// TestArchiveTornTail writes an archive as a run does (lines, a sync
// before a commit, more lines), cuts the file inside the unsynced part as
// a crash would, and reads it back: the synced lines come back verbatim
// (odd bytes included), the torn tail is dropped for an unfinished run and
// is an error for a finished one.
func TestArchiveTornTail(t *testing.T) {
	dir := t.TempDir()
	a := NewArchive(dir)
	run := load.Run{ID: "r1", Source: "s", Command: "run", StartedAt: time.Unix(1_700_000_000, 0).UTC()}
	if err := a.begin(run, DefaultOptions(), 100); err != nil {
		t.Fatal(err)
	}
	a.pipe("L1", "windows", nil, time.Time{}, nil, time.UTC)
	a.Observer("L1")(extract.Exchange{Method: "POST", Path: "/contacts/search", Body: []byte(`{"locationId":"L1"}`), Status: 200})
	odd := []byte("{\"id\":\"c1\",\"name\":\"\xff\xfe\"}")
	a.record("L1", api.Record{Resource: api.ResourceContacts, LocationID: "L1", Raw: odd})
	a.record("L1", api.Record{Mark: &api.Mark{LocationID: "L1", Resource: api.ResourceContacts, Cursor: []any{json.Number("1764003536678"), "c1"}}})
	if err := a.sync("L1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "r1", "L1.jsonl.zst")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	synced := st.Size()
	for i := range 200 { // unsynced lines, then a cut inside them
		a.record("L1", api.Record{Resource: api.ResourceContacts, LocationID: "L1", Raw: []byte(`{"id":"x` + strings.Repeat("y", i) + `"}`)})
	}
	if err := a.sync("L1"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:synced+(int64(len(b))-synced)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	read := func(torn bool) ([]archiveLine, error) {
		f, _ := os.Open(path)
		defer f.Close()
		d, _ := zstd.NewReader(f)
		defer d.Close()
		lr := &lineReader{sc: bufio.NewReader(d), torn: torn}
		var out []archiveLine
		for l, ok := lr.next(); ok; l, ok = lr.next() {
			out = append(out, l)
		}
		return out, lr.err
	}
	lines, err := read(true)
	if err != nil || len(lines) < 4 {
		t.Fatalf("torn read: %d lines, %v", len(lines), err)
	}
	if lines[0].T != linePipe || lines[1].T != lineRequest || lines[1].Method != "POST" || string(lines[1].Body) != `{"locationId":"L1"}` {
		t.Errorf("first lines %+v %+v", lines[0], lines[1])
	}
	if !bytes.Equal(lines[2].Bytes, odd) || lines[3].Mark == nil || lines[3].Mark.Cursor[0] != json.Number("1764003536678") {
		t.Errorf("record %q, mark %+v", lines[2].Bytes, lines[3].Mark)
	}
	if _, err := read(false); err == nil {
		t.Error("a torn file of a finished run read without an error")
	}
	runs, err := ReadArchive(dir)
	if err != nil || len(runs) != 1 || runs[0].Ended != nil || runs[0].Run.ID != "r1" {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	if err := CheckArchived(runs, []string{"r1", "r2"}); err == nil || !strings.Contains(err.Error(), "r2") {
		t.Errorf("CheckArchived: %v", err)
	}
}
