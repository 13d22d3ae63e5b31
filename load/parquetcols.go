package load

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/file"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Files written before a column was added (a newer schema or a user
// mapping) lack it; files written before a rename hold the old name. A
// reader of mixed files selects each column through projection: the column
// where files have it (union_by_name fills the others with NULL), the old
// name where only that exists, else a typed NULL. A rewrite of a bucket
// (copy-on-write) writes the new schema, so files migrate as they are
// touched, and nothing a file holds is dropped by a rename.

// colCache remembers the top-level columns of published files: they are
// never modified, so the footer is read once per process.
type colCache struct {
	mu   sync.Mutex
	cols map[string]map[string]bool // absolute path → columns
}

var fileCols = &colCache{cols: map[string]map[string]bool{}}

// of returns the columns of the Parquet file at name.
func (c *colCache) of(name string) (map[string]bool, error) {
	c.mu.Lock()
	cols, ok := c.cols[name]
	c.mu.Unlock()
	if ok {
		return cols, nil
	}
	r, err := file.OpenParquetFile(name, false)
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", name, err)
	}
	defer r.Close()
	root := r.MetaData().Schema.Root()
	cols = map[string]bool{}
	for i := range root.NumFields() {
		cols[root.Field(i).Name()] = true
	}
	c.mu.Lock()
	c.cols[name] = cols
	c.mu.Unlock()
	return cols, nil
}

// set records the columns of a file this process wrote.
func (c *colCache) set(name string, cols []string) {
	m := make(map[string]bool, len(cols))
	for _, n := range cols {
		m[n] = true
	}
	c.mu.Lock()
	c.cols[name] = m
	c.mu.Unlock()
}

// projection is the select list of cols of table t over the files rels
// (relative to the warehouse), each expression named as its column.
func (p *Parquet) projection(t whsql.Table, rels []string, cols []string) (string, error) {
	have := map[string]bool{}
	for _, r := range rels {
		fc, err := fileCols.of(filepath.Join(p.dir, filepath.FromSlash(r)))
		if err != nil {
			return "", err
		}
		for c := range fc {
			have[c] = true
		}
	}
	was := map[string]string{}
	for _, rn := range t.Renames() {
		was[rn[1]] = rn[0]
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		old := was[c]
		switch {
		case have[c] && old != "" && have[old]:
			out[i] = fmt.Sprintf("coalesce(%s, %s) AS %s", quote(c), quote(old), quote(c))
		case have[c]:
			out[i] = quote(c)
		case old != "" && have[old]:
			out[i] = fmt.Sprintf("%s AS %s", quote(old), quote(c))
		default:
			f, ok := t.Schema.FieldsByName(c)
			if !ok {
				return "", fmt.Errorf("%s has no column %s", t.Name, c)
			}
			typ, _ := whsql.DuckDBType(f[0].Type)
			out[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", typ, quote(c))
		}
	}
	return strings.Join(out, ", "), nil
}
