package load

import (
	"context"
	"crypto/md5"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Copy-on-write merge: every table's rows live in
// <table>/location_id=<id>/b<bucket>.parquet, one file per (location,
// bucket), each holding the current row of its keys. A commit rewrites
// only the (location, bucket) files its rows and deletes touch: the old
// file's rows and the commit's are merged by key in DuckDB, the commit's
// soft deletes applied, and the result written to the staging area; after
// the manifest is published the new file is renamed over the old one.
//
// Rows are bucketed by a hash of contact_id modulo the partition's bucket
// count, so a contact and its children share a bucket and the pipeline's
// deletes (contacts by key, children by contact) touch one bucket per
// location. This assumes a key keeps its location and contact.
//
// A partition starts with DefaultParquetBuckets buckets. When a commit
// would leave it with more than the file bound (WithParquetFileRows,
// DefaultParquetFileRows) rows per bucket on average, the commit rewrites
// the whole partition with the count doubled (as often as needed) and the
// manifest records it (ledger.Buckets). With a power-of-two count a key of
// bucket b goes to b or b+n: the new files are renamed in bucket order, so
// during those renames a glob reader can miss a moving key (never see it
// twice); readers through the manifest or views.sql see one version.
const (
	parquetStagingDir      = "_staging"
	DefaultParquetBuckets  = 4
	DefaultParquetFileRows = 1_000_000
)

// bucketsOf is the bucket count of a partition of table.
func (l *ledger) bucketsOf(table, loc string) int {
	if n := l.Buckets[table][loc]; n > 0 {
		return n
	}
	return DefaultParquetBuckets
}

// bucketCountSQL is the bucket count of each row's partition of table, over
// the _location_id column.
func (l *ledger) bucketCountSQL(table string) string {
	m := l.Buckets[table]
	if len(m) == 0 {
		return fmt.Sprint(DefaultParquetBuckets)
	}
	locs := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	b.WriteString("CASE " + quote(whsql.ColLocationID))
	for _, loc := range locs {
		fmt.Fprintf(&b, " WHEN %s THEN %d", sqlString(loc), m[loc])
	}
	fmt.Fprintf(&b, " ELSE %d END", DefaultParquetBuckets)
	return b.String()
}

// bucketFile is the published file of one bucket, relative, with slashes.
// Its name never changes: a commit renames the new version over the old
// one (an atomic replace), so a reader that globs the folders sees each
// key exactly once, in the old version or the new, at every instant.
func bucketFile(table, loc string, bucket int) string {
	return path.Join(partDir(table, loc), fmt.Sprintf("b%d.parquet", bucket))
}

// part names one file of a table: a location and a bucket.
type part struct {
	loc    string
	bucket int
}

// bucketHash is the hash of v that buckets are taken from: its low four
// bits are md5's first hex digit (the first layout's bucket), the next
// sixteen md5's second and third bytes.
func bucketHash(v string) int {
	s := md5.Sum([]byte(v))
	return int(s[0]>>4) | int(s[1])<<4 | int(s[2])<<12
}

func bucketOf(v string, n int) int { return bucketHash(v) % n }

// bucketSQL is bucketOf in DuckDB SQL over column col, with n an SQL
// expression.
func bucketSQL(col string, n string) string {
	h := fmt.Sprintf("md5(coalesce(CAST(%s AS VARCHAR), ''))", quote(col))
	nib := func(i int) string {
		return fmt.Sprintf("(strpos('0123456789abcdef', substr(%s, %d, 1)) - 1)", h, i)
	}
	return fmt.Sprintf("((%s + 16 * %s + 256 * %s + 4096 * %s + 65536 * %s) %% (%s))",
		nib(1), nib(4), nib(3), nib(6), nib(5), n)
}

// bucketCol is the column rows of t are bucketed by.
func bucketCol(t whsql.Table) string {
	if _, ok := t.Schema.FieldsByName("contact_id"); ok {
		return "contact_id"
	}
	return t.Key[len(t.Key)-1]
}

// partDir is the Hive-style folder of a location, relative, with slashes.
func partDir(table, loc string) string {
	return path.Join(table, "location_id="+escapePart(loc))
}

// escapePart percent-encodes what cannot stand in a folder name (Hive style).
func escapePart(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		if r < 0x20 || r == 0x7f || strings.IndexByte(`"#%'*/:=?\{}[]^`, r) >= 0 {
			fmt.Fprintf(&b, "%%%02X", r)
		} else {
			b.WriteByte(r)
		}
	}
	return b.String()
}

var parquetDeleteSchema = arrow.NewSchema([]arrow.Field{
	{Name: whsql.ColSource, Type: arrow.BinaryTypes.String},
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: whsql.ColDeletedAt, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "by_contact", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "ord", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// stringCol returns the values of column name of rec ("" for NULL), as
// strings of their own: an Arrow string aliases the record's buffer, which
// the caller frees after the commit, and these end up in the ledger (the
// locations of the parts a commit touched).
func stringCol(rec arrowRecord, name string) []string {
	idx := rec.Schema().FieldIndices(name)
	out := make([]string, rec.NumRows())
	if len(idx) == 0 {
		return out
	}
	if a, ok := rec.Column(idx[0]).(*array.String); ok {
		for i := range out {
			if a.IsValid(i) {
				out[i] = strings.Clone(a.Value(i))
			}
		}
	}
	return out
}

// mergeTable merges recs and dels of table t into next: it writes the new
// files of the parts they touch under stage and swaps them into next's
// file list (next.Pending records what to move and remove).
//
// contacts are the commit's contacts (location, contact id): a
// ReplaceByContact table rewrites those of its parts holding them that
// hold rows.
func (p *Parquet) mergeTable(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, dels []Delete,
	contacts [][2]string, next *ledger, stage string) (TableStats, error) {
	st := TableStats{Staged: rowCount(recs)}
	touched := map[part]bool{}
	bcol := bucketCol(t)
	in := ""
	if st.Staged > 0 {
		in = filepath.Join(stage, "in", t.Name+".parquet")
		if err := writeStaged(in, t.Schema, recs, p.cfg); err != nil {
			return st, err
		}
		if err := p.grow(ctx, c, t, recs, in, next, touched); err != nil {
			return st, fmt.Errorf("bucket count: %w", err)
		}
		for _, r := range recs {
			locs, keys := stringCol(r, whsql.ColLocationID), stringCol(r, bcol)
			for i := range locs {
				touched[part{locs[i], bucketOf(keys[i], next.bucketsOf(t.Name, locs[i]))}] = true
			}
		}
	}
	delFile := ""
	if _, ok := t.Schema.FieldsByName(whsql.ColDeletedAt); ok && len(dels) > 0 {
		// The files that hold a key to delete: those of the ids' buckets
		// when the delete matches the bucket column, else all of them.
		var byBucket []string // ids matched against the bucket column
		all := false
		b := array.NewRecordBuilder(p.cfg.mem, parquetDeleteSchema)
		var ord int64
		idCol := t.Key[len(t.Key)-1]
		for _, d := range dels {
			match := idCol
			if d.ByContact {
				match = "contact_id"
			}
			for _, id := range d.IDs {
				if match == bcol {
					byBucket = append(byBucket, id)
				} else {
					all = true
				}
				b.Field(0).(*array.StringBuilder).Append(d.Source)
				b.Field(1).(*array.StringBuilder).Append(id)
				b.Field(2).(*array.TimestampBuilder).AppendTime(d.At.UTC())
				b.Field(3).(*array.BooleanBuilder).Append(d.ByContact)
				b.Field(4).(*array.Int64Builder).Append(ord)
				ord++
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		delFile = filepath.Join(stage, "in", t.Name+".deletes.parquet")
		err := writeStaged(delFile, parquetDeleteSchema, []arrowRecord{rec})
		rec.Release()
		if err != nil {
			return st, err
		}
		buckets := map[[2]int]bool{} // (count, bucket)
		counts := map[int]bool{}
		for _, f := range next.Tables[t.Name] {
			if n := next.bucketsOf(t.Name, f.Location); !counts[n] {
				counts[n] = true
				for _, id := range byBucket {
					buckets[[2]int{n, bucketOf(id, n)}] = true
				}
			}
		}
		var cands []string
		for _, f := range next.Tables[t.Name] {
			if all || buckets[[2]int{next.bucketsOf(t.Name, f.Location), f.Bucket}] {
				cands = append(cands, f.Path)
			}
		}
		if len(cands) > 0 {
			rows, err := c.QueryContext(ctx, fmt.Sprintf(`SELECT DISTINCT m.filename FROM read_parquet(%s, filename = true, union_by_name = true) m
				SEMI JOIN read_parquet(%s) d ON d.%s = m.%s AND ((NOT d.by_contact AND d.id = m.%s) OR (d.by_contact AND d.id = m.contact_id))
				WHERE m.%s IS NULL`, p.fileList(cands), sqlString(delFile), quote(whsql.ColSource), quote(whsql.ColSource),
				quote(idCol), quote(whsql.ColDeletedAt)))
			if err != nil {
				return st, fmt.Errorf("find deleted keys: %w", err)
			}
			hit := map[string]bool{}
			for rows.Next() {
				var fn string
				if err := rows.Scan(&fn); err != nil {
					rows.Close()
					return st, err
				}
				hit[filepath.Clean(fn)] = true
			}
			if err := rows.Err(); err != nil {
				rows.Close()
				return st, err
			}
			rows.Close()
			for _, f := range next.Tables[t.Name] {
				if hit[filepath.Join(p.dir, filepath.FromSlash(f.Path))] {
					touched[part{f.Location, f.Bucket}] = true
				}
			}
		}
	}
	contactsIn := ""
	if t.ReplaceByContact {
		if f := filepath.Join(stage, "in", whsql.Contacts.Name+".parquet"); fileExists(f) {
			contactsIn = f
			have := map[part]bool{}
			for _, f := range next.Tables[t.Name] {
				have[part{f.Location, f.Bucket}] = true
			}
			for _, k := range contacts {
				if pt := (part{k[0], bucketOf(k[1], next.bucketsOf(t.Name, k[0]))}); have[pt] {
					touched[pt] = true
				}
			}
		}
	}
	parts := make([]part, 0, len(touched))
	for pt := range touched {
		parts = append(parts, pt)
	}
	slices.SortFunc(parts, func(a, b part) int { return cmpAll(strings.Compare(a.loc, b.loc), a.bucket-b.bucket) })
	if len(parts) == 0 {
		return st, nil
	}
	ps, err := p.mergeParts(ctx, c, t, parts, in, delFile, contactsIn, next, stage)
	if err != nil {
		return st, err
	}
	st.Written, st.Replaced, st.Deleted = ps.Written, ps.Replaced, ps.Deleted
	return st, nil
}

// grow doubles the bucket count of each partition of t that recs (staged
// in in) would leave with more than the file bound of rows per bucket,
// records it in next and marks every bucket of the partition touched: the
// commit rewrites the whole partition. The rows are counted exactly (keys
// of the old files and the staged rows) only when the upper bound (every
// staged row new) crosses the bound.
func (p *Parquet) grow(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, in string, next *ledger, touched map[part]bool) error {
	bound := p.cfg.fileRows
	if bound <= 0 {
		return nil
	}
	rows := map[string]int64{}
	for _, r := range recs {
		for _, loc := range stringCol(r, whsql.ColLocationID) {
			rows[loc]++
		}
	}
	files := map[string][]string{}
	for _, f := range next.Tables[t.Name] {
		if _, ok := rows[f.Location]; ok {
			rows[f.Location] += f.Rows
			files[f.Location] = append(files[f.Location], f.Path)
		}
	}
	for _, loc := range slices.Sorted(maps.Keys(rows)) {
		n, old := rows[loc], next.bucketsOf(t.Name, loc)
		if n <= int64(old)*bound {
			continue
		}
		keys := quoteList(t.Key)
		q := fmt.Sprintf("SELECT %s FROM read_parquet(%s) WHERE %s = %s", keys, sqlString(in), quote(whsql.ColLocationID), sqlString(loc))
		if len(files[loc]) > 0 {
			q = fmt.Sprintf("SELECT %s FROM read_parquet(%s, union_by_name = true) UNION %s", keys, p.fileList(files[loc]), q)
		}
		if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM (%s)", q)).Scan(&n); err != nil {
			return err
		}
		nb := old
		for n > int64(nb)*bound && nb < 1<<20 {
			nb *= 2
		}
		if nb == old {
			continue
		}
		if next.Buckets == nil {
			next.Buckets = map[string]map[string]int{}
		}
		if next.Buckets[t.Name] == nil {
			next.Buckets[t.Name] = map[string]int{}
		}
		next.Buckets[t.Name][loc] = nb
		for b := range nb {
			touched[part{loc, b}] = true
		}
	}
	return nil
}

// mergeParts merges the rows of the touched parts in one query (one
// temporary table, its rows tagged with their part), then writes each
// part's new file and swaps it into next. One query per commit and table,
// not one per part: a small commit's cost is DuckDB's per-query overhead.
//
// contactsIn, when set, is the commit's contacts input: rows of t (a
// ReplaceByContact table) of those contacts are dropped unless newer.
func (p *Parquet) mergeParts(ctx context.Context, c *sql.Conn, t whsql.Table, parts []part, in, delFile, contactsIn string,
	next *ledger, stage string) (TableStats, error) {
	var st TableStats
	cols := quoteList(t.Columns())
	touched := map[part]bool{}
	for _, pt := range parts {
		touched[pt] = true
	}
	var old []string
	oldFiles := map[part][]string{}
	oldRows := map[part]int64{}
	var keep []parquetFile
	for _, f := range next.Tables[t.Name] {
		if pt := (part{f.Location, f.Bucket}); touched[pt] {
			old = append(old, f.Path)
			oldFiles[pt] = append(oldFiles[pt], f.Path)
			oldRows[pt] += f.Rows
		} else {
			keep = append(keep, f)
		}
	}
	var srcs []string
	if len(old) > 0 {
		proj, err := p.projection(t, old, t.Columns())
		if err != nil {
			return st, err
		}
		where := ""
		if contactsIn != "" {
			// A contact written by this commit replaces all its rows here.
			where = fmt.Sprintf(` WHERE NOT EXISTS (SELECT 1 FROM read_parquet(%s) w WHERE w.%[2]s = o.%[2]s AND w.contact_id = o.contact_id
				AND w.%[3]s >= o.%[3]s)`, sqlString(contactsIn), quote(whsql.ColSource), quote(t.Version))
		}
		// Not hive_partitioning: the folder's location_id=<id> would
		// stand for contacts' own location_id column (NULL, or another
		// value, in a row), which the rewrite must keep as stored.
		srcs = append(srcs, fmt.Sprintf(`SELECT * FROM (SELECT %s, 0 AS _o, file_row_number AS _r FROM read_parquet(%s, file_row_number = true, union_by_name = true, hive_partitioning = false)) o%s`,
			proj, p.fileList(old), where))
	}
	if in != "" {
		srcs = append(srcs, fmt.Sprintf(`SELECT %s, 1 AS _o, file_row_number AS _r FROM read_parquet(%s, file_row_number = true)`, cols, sqlString(in)))
	}
	// A key lives in one part (its location and bucket never change), so
	// the latest row per key over all parts is the latest in its part.
	merged := fmt.Sprintf(`SELECT * EXCLUDE (_r) FROM (%s)
		QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s DESC, _o DESC, _r DESC) = 1`,
		strings.Join(srcs, "\nUNION ALL BY NAME\n"), quoteList(t.Key), quote(t.Version))
	if t.TracksChanges() {
		merged = keepChangesParquet(t, strings.Join(srcs, "\nUNION ALL BY NAME\n"))
	}
	if delFile != "" {
		// The first delete of the commit that matches a row sets its
		// _deleted_at, unless it has one (as DuckDB's UPDATE … IS NULL).
		idCol := t.Key[len(t.Key)-1]
		dsel := func(byContact bool) string {
			return fmt.Sprintf(`(SELECT %[1]s, id, arg_min(%[2]s, ord) AS at, min(ord) AS ord FROM read_parquet(%[3]s)
				WHERE by_contact = %[4]t GROUP BY %[1]s, id)`, quote(whsql.ColSource), quote(whsql.ColDeletedAt), sqlString(delFile), byContact)
		}
		newdel := fmt.Sprintf("m.%s IS NULL AND (dk.ord IS NOT NULL OR dc.ord IS NOT NULL)", quote(whsql.ColDeletedAt))
		at := "CASE WHEN dk.ord IS NOT NULL AND (dc.ord IS NULL OR dk.ord <= dc.ord) THEN dk.at ELSE dc.at END"
		changed := ""
		if t.TracksChanges() {
			// A soft delete changes the row when it sets _deleted_at.
			changed = fmt.Sprintf(", CASE WHEN %[1]s THEN %[2]s ELSE m.%[3]s END AS %[3]s", newdel, at, quote(whsql.ColChangedAt))
		}
		merged = fmt.Sprintf(`SELECT m.* REPLACE (coalesce(m.%[1]s, %[7]s) AS %[1]s%[8]s),
				%[9]s AS _newdel
			FROM (%[2]s) m
			LEFT JOIN %[3]s dk ON dk.%[5]s = m.%[5]s AND dk.id = m.%[6]s
			LEFT JOIN %[4]s dc ON dc.%[5]s = m.%[5]s AND dc.id = m.contact_id`,
			quote(whsql.ColDeletedAt), merged, dsel(false), dsel(true), quote(whsql.ColSource), quote(idCol), at, changed, newdel)
	} else {
		merged = fmt.Sprintf("SELECT *, false AS _newdel FROM (%s)", merged)
	}
	merged = fmt.Sprintf("SELECT *, %s AS _pl, %s AS _pb FROM (%s)", quote(whsql.ColLocationID), bucketSQL(bucketCol(t), next.bucketCountSQL(t.Name)), merged)
	if _, err := c.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE merged AS "+merged); err != nil {
		return st, fmt.Errorf("merge: %w", err)
	}
	type counts struct{ written, keptOld, deleted, total int64 }
	per := map[part]counts{}
	rows, err := c.QueryContext(ctx, `SELECT _pl, _pb, count(*) FILTER (WHERE _o = 1), count(*) FILTER (WHERE _o = 0),
		count(*) FILTER (WHERE _newdel), count(*) FROM merged GROUP BY _pl, _pb`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var pt part
		var n counts
		if err := rows.Scan(&pt.loc, &pt.bucket, &n.written, &n.keptOld, &n.deleted, &n.total); err != nil {
			rows.Close()
			return st, err
		}
		per[pt] = n
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return st, err
	}
	rows.Close()
	for _, pt := range parts {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, ok := per[pt]
		if !ok {
			// Only a re-bucketed partition, or a table whose rows are
			// replaced by contact (every row here replaced by contacts
			// that now have none), can leave a bucket empty.
			if next.bucketsOf(t.Name, pt.loc) == DefaultParquetBuckets && (contactsIn == "" || len(oldFiles[pt]) == 0) {
				return st, fmt.Errorf("location %s bucket %d: merge left no row", pt.loc, pt.bucket)
			}
			st.Replaced += oldRows[pt]
			next.Pending.Remove = append(next.Pending.Remove, oldFiles[pt]...)
			continue
		}
		st.Written += n.written
		st.Deleted += n.deleted
		st.Replaced += oldRows[pt] - n.keptOld
		rel := bucketFile(t.Name, pt.loc, pt.bucket)
		dst := filepath.Join(stage, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return st, err
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf(`COPY (SELECT %s FROM merged WHERE _pl = %s AND _pb = %d ORDER BY %s) TO %s
			(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)`, cols, sqlString(pt.loc), pt.bucket, quoteList(t.Key), sqlString(dst), p.cfg.rowGroupRows)); err != nil {
			return st, fmt.Errorf("write %s: %w", rel, err)
		}
		fi, err := os.Stat(dst)
		if err != nil {
			return st, err
		}
		fileCols.set(filepath.Join(p.dir, filepath.FromSlash(rel)), t.Columns())
		keep = append(keep, parquetFile{Path: rel, Location: pt.loc, Bucket: pt.bucket, Rows: n.total,
			Bytes: fi.Size(), Seq: next.Seq})
		next.Pending.Add = append(next.Pending.Add, rel)
		for _, o := range oldFiles[pt] {
			if o != rel { // files of the first naming (b<bucket>-<seq>)
				next.Pending.Remove = append(next.Pending.Remove, o)
			}
		}
	}
	next.Tables[t.Name] = keep
	_, err = c.ExecContext(ctx, "DROP TABLE merged")
	return st, err
}

// keepChangesParquet is the merge of the rows of srcs (old rows with _o =
// 0, the commit's with _o = 1) for a table that tracks changes: the newest
// row per key, which, when it is a staged row replacing an old one, keeps
// the old row's _first_seen_at, and its _changed_at when the compared
// values (CompareCols) are equal (else it changed when read). Change
// columns still NULL (rows of files written before they existed, or a
// writer that left them unset) are filled as DuckDB's backfill does.
func keepChangesParquet(t whsql.Table, srcs string) string {
	cmp := quoteList(t.CompareCols())
	fs, ch, ex, del := quote(whsql.ColFirstSeenAt), quote(whsql.ColChangedAt), quote(whsql.ColExtractedAt), quote(whsql.ColDeletedAt)
	return fmt.Sprintf(`SELECT * EXCLUDE (_r, _prev) REPLACE (
			CASE WHEN _o = 1 AND _prev._o = 0 THEN coalesce(_prev.fs, _prev.ex) ELSE coalesce(%[1]s, %[3]s) END AS %[1]s,
			CASE WHEN _o = 1 AND _prev._o = 0
				THEN CASE WHEN _prev.v IS NOT DISTINCT FROM row(%[4]s) THEN coalesce(_prev.ch, _prev.del, _prev.ex) ELSE %[3]s END
				ELSE coalesce(%[2]s, %[5]s, %[3]s) END AS %[2]s)
		FROM (
			SELECT *, first_value(struct_pack(_o := _o, fs := %[1]s, ch := %[2]s, ex := %[3]s, del := %[5]s, v := row(%[4]s)))
				OVER (PARTITION BY %[6]s ORDER BY _o, %[7]s DESC, _r DESC) AS _prev
			FROM (%[8]s)
			QUALIFY row_number() OVER (PARTITION BY %[6]s ORDER BY %[7]s DESC, _o DESC, _r DESC) = 1
		)`, fs, ch, ex, cmp, del, quoteList(t.Key), quote(t.Version), srcs)
}

// writeStaged writes recs to name (an unpublished file of the staging area).
func writeStaged(name string, schema *arrow.Schema, recs []arrowRecord, cfgs ...config) error {
	cfg := newConfig(nil)
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	return writeParquetSync(f, schema, recs, cfg, false)
}

// recordKeys are the (location, col) pairs of the rows of recs.
func recordKeys(recs []arrowRecord, col string) [][2]string {
	var out [][2]string
	for _, r := range recs {
		locs, keys := stringCol(r, whsql.ColLocationID), stringCol(r, col)
		for i := range locs {
			out = append(out, [2]string{locs[i], keys[i]})
		}
	}
	return out
}
