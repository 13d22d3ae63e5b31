package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	dsql "database/sql"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// treeHash hashes every file under path (a DuckDB file or a Parquet tree).
func treeHash(t *testing.T, path string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestQueryFormatsAndReadOnly runs `query` over a DuckDB file and a Parquet
// tree in each format, compares the answers with the simulator's truth, and
// expects every write to be refused with the warehouse left unchanged.
func TestQueryFormatsAndReadOnly(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 21, Contacts: 40, Locations: 2})
	live := 0
	for _, loc := range srv.Locations() {
		for _, c := range srv.Truth(loc) {
			if !c.Deleted {
				live++
			}
		}
	}
	ctx := context.Background()
	for _, kind := range []string{"duckdb", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wh")
			if kind == "duckdb" {
				path += ".duckdb"
			}
			viewsExport(t, srv, base, path, kind, "run")
			run := func(args ...string) (int, string, string) {
				var out, errb bytes.Buffer
				code := dispatch(ctx, append([]string{"query", "--warehouse", path}, args...), &out, &errb)
				return code, out.String(), errb.String()
			}
			q := `SELECT _location_id, count(*) AS contacts, list(contact_id ORDER BY contact_id)[1] AS first
				FROM contact_360 GROUP BY 1 ORDER BY 1`
			perLoc := map[string]int{}
			for _, loc := range srv.Locations() {
				for _, c := range srv.Truth(loc) {
					if !c.Deleted {
						perLoc[loc]++
					}
				}
			}

			code, out, errs := run("--format", "table", q)
			if code != 0 {
				t.Fatalf("table: exit %d: %s", code, errs)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2+len(perLoc) || !strings.HasPrefix(lines[0], "_location_id  contacts  first") ||
				lines[len(lines)-1] != "("+strconv.Itoa(len(perLoc))+" rows)" {
				t.Errorf("table output:\n%s", out)
			}
			for _, l := range lines[1 : len(lines)-1] {
				f := strings.Fields(l)
				if len(f) != 3 || strconv.Itoa(perLoc[f[0]]) != f[1] || strings.Index(l, f[1]) != strings.Index(lines[0], "contacts") {
					t.Errorf("table row %q not aligned or not the truth (%v)", l, perLoc)
				}
			}

			code, out, errs = run(q, "--format", "csv") // flags after the query too
			if code != 0 {
				t.Fatalf("csv: exit %d: %s", code, errs)
			}
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(recs) != 1+len(perLoc) {
				t.Fatalf("csv %v:\n%s", err, out)
			}
			for _, r := range recs[1:] {
				if strconv.Itoa(perLoc[r[0]]) != r[1] {
					t.Errorf("csv row %v, truth %v", r, perLoc)
				}
			}

			code, out, errs = run("--format", "json", `SELECT contact_id, tags, created_at FROM contacts_live ORDER BY contact_id`)
			if code != 0 {
				t.Fatalf("json: exit %d: %s", code, errs)
			}
			n := 0
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var row struct {
					ContactID string   `json:"contact_id"`
					Tags      []string `json:"tags"`
					CreatedAt string   `json:"created_at"`
				}
				if err := json.Unmarshal([]byte(l), &row); err != nil || row.ContactID == "" || row.CreatedAt == "" {
					t.Fatalf("json line %q: %v", l, err)
				}
				n++
			}
			if n != live {
				t.Errorf("json: %d rows, truth %d live contacts", n, live)
			}

			pq := filepath.Join(t.TempDir(), "out.parquet")
			if code, _, errs := run("--format", "parquet", "--out", pq, `SELECT * FROM contact_360`); code != 0 {
				t.Fatalf("parquet: exit %d: %s", code, errs)
			}
			db, err := dsql.Open("duckdb", "")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got int
			if err := db.QueryRow(`SELECT count(*) FROM read_parquet(?)`, pq).Scan(&got); err != nil || got != live {
				t.Errorf("parquet file: %d rows (%v), truth %d", got, err, live)
			}
			if code, _, _ := run("--format", "parquet", `SELECT 1`); code != exitUsage {
				t.Errorf("parquet without --out: exit %d", code)
			}

			before := treeHash(t, path)
			for _, w := range []string{
				`INSERT INTO contacts (contact_id, _source, _location_id, _run_id, _extracted_at) VALUES ('x', 's', 'l', 'r', now())`,
				`CREATE TABLE evil AS SELECT * FROM contacts`,
				`DELETE FROM contacts`,
				`DROP VIEW contact_360`,
				`COPY contacts TO '` + filepath.Join(filepath.Dir(path), "leak.csv") + `'`,
				`SELECT 1; DELETE FROM contacts`,
				`ATTACH 'other.duckdb' AS o`,
			} {
				code, _, errs := run("--format", "csv", w)
				if code == 0 || !strings.Contains(errs, "SELECT statements only") {
					t.Errorf("%q: exit %d, stderr %q; want refused", w, code, errs)
				}
			}
			if treeHash(t, path) != before {
				t.Error("the warehouse changed under refused writes")
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), "leak.csv")); err == nil {
				t.Error("COPY wrote a file")
			}
			if code, out, _ := run("--format", "csv", `SELECT count(*) AS n FROM contacts`); code != 0 || out != "n\n"+strconv.Itoa(live)+"\n" {
				t.Errorf("after refused writes: exit %d, %q; want %d contacts", code, out, live)
			}
		})
	}
}
