package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// DebugCommitDelayEnv names an environment variable holding a duration the
// DuckDB sink sleeps inside each commit's transaction, after the data is
// merged and before the state is written. Crash tests set it to widen the
// window in which a kill lands mid-commit. Never set it in production.
const DebugCommitDelayEnv = "CONTACTS_ETL_DEBUG_COMMIT_DELAY"

func softDelete(ctx context.Context, c *sql.Conn, del Delete) (int64, error) {
	if len(del.IDs) == 0 {
		return 0, nil
	}
	t, _ := whsql.ByName(del.Table)
	ids, err := json.Marshal(del.IDs)
	if err != nil {
		return 0, err
	}
	idCol := t.Key[len(t.Key)-1]
	if del.ByContact {
		idCol = "contact_id"
	}
	set := quote(whsql.ColDeletedAt) + " = $1"
	if t.TracksChanges() {
		set += ", " + quote(whsql.ColChangedAt) + " = $1" // a soft delete changes the row
	}
	return execN(ctx, c, fmt.Sprintf(`UPDATE %s SET %s WHERE %s = $2 AND %s IS NULL AND %s IN (SELECT unnest(from_json($3::JSON, '["VARCHAR"]')))`,
		t.Name, set, quote(whsql.ColSource), quote(whsql.ColDeletedAt), quote(idCol)),
		del.At.UTC(), del.Source, string(ids))
}

func writeState(ctx context.Context, c *sql.Conn, cm *Commit) error {
	if d, err := time.ParseDuration(os.Getenv(DebugCommitDelayEnv)); err == nil && d > 0 {
		time.Sleep(d)
	}
	if err := validateRetries(cm); err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, w := range cm.Watermarks {
		if err := exec(ctx, c, `DELETE FROM watermarks WHERE source = ? AND location_id = ? AND resource = ?`,
			w.Source, w.LocationID, w.Resource); err != nil {
			return fmt.Errorf("watermark: %w", err)
		}
		if err := exec(ctx, c, `INSERT INTO watermarks VALUES (?, ?, ?, ?, ?)`,
			w.Source, w.LocationID, w.Resource, w.Value.UTC(), now); err != nil {
			return fmt.Errorf("watermark: %w", err)
		}
	}
	for _, w := range cm.Windows {
		if err := exec(ctx, c, `DELETE FROM windows WHERE source = ? AND location_id = ? AND resource = ? AND window_start = ?`,
			w.Source, w.LocationID, w.Resource, w.Start.UTC()); err != nil {
			return fmt.Errorf("window: %w", err)
		}
		if err := exec(ctx, c, `INSERT INTO windows (source, location_id, resource, window_start, window_end, status, cursor, run_id, updated_at, kind)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.Source, w.LocationID, w.Resource, w.Start.UTC(), w.End.UTC(), w.Status, nullString(w.Cursor), w.RunID, now, nullString(w.Kind)); err != nil {
			return fmt.Errorf("window %s/%s/%s %s: %w", w.Source, w.LocationID, w.Resource, w.Start.UTC().Format(time.RFC3339), err)
		}
	}
	for _, s := range cm.Swept {
		if len(s.ContactIDs) == 0 {
			continue
		}
		// The ids go in once, as an Arrow column (a JSON list parsed by
		// each statement cost 90 ms per 15k ids).
		if err := stageStrings(ctx, c, "swept_ids", s.ContactIDs); err != nil {
			return fmt.Errorf("sweeps: %w", err)
		}
		if err := exec(ctx, c, `DELETE FROM sweeps WHERE source = ? AND location_id = ?
			AND contact_id IN (SELECT id FROM swept_ids)`, s.Source, s.LocationID); err != nil {
			return fmt.Errorf("sweeps: %w", err)
		}
		if err := exec(ctx, c, `INSERT INTO sweeps SELECT ?::VARCHAR, ?::VARCHAR, id, ?::TIMESTAMPTZ, ?::VARCHAR FROM
			(SELECT DISTINCT id FROM swept_ids)`, s.Source, s.LocationID, s.At.UTC(), s.RunID); err != nil {
			return fmt.Errorf("sweeps: %w", err)
		}
		if err := dropTable(ctx, c, "swept_ids"); err != nil {
			return err
		}
	}
	for _, r := range cm.Reconciled {
		if err := exec(ctx, c, `INSERT INTO reconciles VALUES (?, ?, ?, ?, ?, ?)`,
			r.Source, r.LocationID, r.At.UTC(), r.RunID, r.Listed, r.Deleted); err != nil {
			return fmt.Errorf("reconciles: %w", err)
		}
	}
	for _, pr := range cm.Probes {
		if err := exec(ctx, c, `DELETE FROM probes WHERE source = ? AND location_id = ? AND token_id = ? AND resource = ?`,
			pr.Source, pr.LocationID, pr.TokenID, pr.Resource); err != nil {
			return fmt.Errorf("probes: %w", err)
		}
		if err := exec(ctx, c, `INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?)`,
			pr.Source, pr.LocationID, pr.TokenID, pr.Resource, pr.Reason, pr.At.UTC()); err != nil {
			return fmt.Errorf("probes: %w", err)
		}
	}
	return writeRetries(ctx, c, cm)
}

// Probes implements Store.
func (d *DuckDB) Probes(ctx context.Context, source, location string) ([]Probe, error) {
	var out []Probe
	err := d.session(ctx, func(c *sql.Conn) error {
		rows, err := c.QueryContext(ctx, `SELECT token_id, resource, coalesce(reason, ''), probed_at FROM probes
			WHERE source = ? AND location_id = ? ORDER BY token_id, resource`, source, location)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			pr := Probe{Source: source, LocationID: location}
			if err := rows.Scan(&pr.TokenID, &pr.Resource, &pr.Reason, &pr.At); err != nil {
				return err
			}
			pr.At = pr.At.UTC()
			out = append(out, pr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("probes of %s: %w", location, err)
	}
	return out, nil
}

func readState(ctx context.Context, c *sql.Conn, source string) (*State, error) {
	st := &State{}
	rows, err := c.QueryContext(ctx, `SELECT source, location_id, resource, value FROM watermarks
		WHERE source = ? ORDER BY location_id, resource`, source)
	if err != nil {
		return nil, fmt.Errorf("read watermarks: %w", err)
	}
	for rows.Next() {
		var w Watermark
		if err := rows.Scan(&w.Source, &w.LocationID, &w.Resource, &w.Value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read watermarks: %w", err)
		}
		w.Value = w.Value.UTC()
		st.Watermarks = append(st.Watermarks, w)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("read watermarks: %w", err)
	}
	rows, err = c.QueryContext(ctx, `SELECT source, location_id, resource, window_start, window_end, status,
		coalesce(cursor, ''), run_id, coalesce(kind, '') FROM windows WHERE source = ? ORDER BY location_id, resource, window_start`, source)
	if err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	for rows.Next() {
		var w Window
		if err := rows.Scan(&w.Source, &w.LocationID, &w.Resource, &w.Start, &w.End, &w.Status, &w.Cursor, &w.RunID, &w.Kind); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read windows: %w", err)
		}
		w.Start, w.End = w.Start.UTC(), w.End.UTC()
		st.Windows = append(st.Windows, w)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("read windows: %w", err)
	}
	return st, nil
}

// EachLiveContact implements Store.
func (d *DuckDB) EachLiveContact(ctx context.Context, source, location string, fn func(id string, updatedMs int64) error) error {
	err := d.session(ctx, func(c *sql.Conn) error {
		return eachIDMillis(ctx, c, `SELECT contact_id, coalesce(epoch_ms(updated_at), 0) FROM contacts
			WHERE _source = ? AND _location_id = ? AND _deleted_at IS NULL`, fn, source, location)
	})
	if err != nil {
		return fmt.Errorf("live contacts of %s: %w", location, err)
	}
	return nil
}

// LiveIDs implements Store.
func (d *DuckDB) LiveIDs(ctx context.Context, source, location, table string, from, to time.Time) ([]string, error) {
	q, args, err := liveIDsQuery(table, table, from, to)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = d.session(ctx, func(c *sql.Conn) (err error) {
		ids, err = idList(ctx, c, q, append([]any{source, location}, args...)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("live %s of %s: %w", table, location, err)
	}
	return ids, nil
}

// LiveChildren implements Store.
func (d *DuckDB) LiveChildren(ctx context.Context, source, location, table string, contactIDs []string) ([]string, error) {
	var ids []string
	err := d.session(ctx, func(c *sql.Conn) (err error) {
		ids, err = liveChildren(ctx, c, table, table, source, location, contactIDs)
		return err
	})
	return ids, err
}

// liveChildren runs LiveChildren's query over from (a table or a subquery
// with its columns) on c.
func liveChildren(ctx context.Context, c *sql.Conn, table, from, source, location string, contactIDs []string) ([]string, error) {
	t, ok := whsql.ByName(table)
	if !ok || len(t.Key) != 2 || t.Name == whsql.Contacts.Name {
		return nil, fmt.Errorf("live children: no child table %q", table)
	}
	if len(contactIDs) == 0 {
		return nil, nil
	}
	const listed = "listed_contacts"
	if err := stageStrings(ctx, c, listed, contactIDs); err != nil {
		return nil, fmt.Errorf("live %s of %d contacts: %w", table, len(contactIDs), err)
	}
	ids, err := idList(ctx, c, fmt.Sprintf(`SELECT %s FROM %s WHERE %s = ? AND %s = ? AND %s IS NULL AND contact_id IN (SELECT id FROM %s)`,
		quote(t.Key[1]), from, quote(whsql.ColSource), quote(whsql.ColLocationID), quote(whsql.ColDeletedAt), listed), source, location)
	if err == nil {
		err = dropTable(ctx, c, listed)
	}
	if err != nil {
		return nil, fmt.Errorf("live %s of %d contacts: %w", table, len(contactIDs), err)
	}
	return ids, nil
}

// liveIDsQuery is the query of LiveIDs over from (a table or a
// subquery), taking source and location, then args.
func liveIDsQuery(table, from string, start, end time.Time) (string, []any, error) {
	t, ok := whsql.ByName(table)
	if !ok || len(t.Key) != 2 {
		return "", nil, fmt.Errorf("live ids: no data table %q", table)
	}
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s = ? AND %s = ? AND %s IS NULL`, quote(t.Key[1]), from,
		quote(whsql.ColSource), quote(whsql.ColLocationID), quote(whsql.ColDeletedAt))
	var args []any
	if !start.IsZero() || !end.IsZero() {
		q += ` AND epoch_ms(start_time) >= ? AND epoch_ms(start_time) < ?`
		args = append(args, start.UnixMilli(), end.UnixMilli())
	}
	return q, args, nil
}

// SweepCandidates returns up to n live contacts of a location whose
// children were last read before sweptBefore, longest ago first (never-swept
// first, then by id), and how many live contacts the location has.
func (d *DuckDB) SweepCandidates(ctx context.Context, source, location string, n int, sweptBefore time.Time) (ids []string, live int, err error) {
	// DuckDB 1.5.6 answers "ORDER BY s.swept_at NULLS FIRST ... LIMIT n"
	// over this LEFT JOIN with rows whose swept_at reads NULL although they
	// have one (a Top-N bug, measured on a 2,000-contact warehouse): the
	// sweep then re-read the same slice every run. Ordering by an
	// expression avoids it; TestIncrementalOnePercent (cmd) fails without it.
	err = d.session(ctx, func(c *sql.Conn) error {
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM contacts WHERE _source = ? AND _location_id = ? AND _deleted_at IS NULL`,
			source, location).Scan(&live); err != nil {
			return err
		}
		var err error
		ids, err = idList(ctx, c, `SELECT k.contact_id FROM contacts k
			LEFT JOIN sweeps s ON s.source = k._source AND s.location_id = k._location_id AND s.contact_id = k.contact_id
			WHERE k._source = ? AND k._location_id = ? AND k._deleted_at IS NULL
			AND (s.swept_at IS NULL OR epoch_ms(s.swept_at) < ?)
			ORDER BY coalesce(epoch_us(s.swept_at), -1), k.contact_id LIMIT ?`, source, location, sweptBefore.UnixMilli(), n)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sweep candidates of %s: %w", location, err)
	}
	return ids, live, nil
}

// LastReconcile returns when the location was last reconciled (zero if
// never).
func (d *DuckDB) LastReconcile(ctx context.Context, source, location string) (time.Time, error) {
	var at sql.NullTime
	err := d.session(ctx, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, `SELECT max(reconciled_at) FROM reconciles WHERE source = ? AND location_id = ?`,
			source, location).Scan(&at)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("last reconcile of %s: %w", location, err)
	}
	return at.Time.UTC(), nil
}

// eachIDMillis calls fn with each (id, epoch ms) row of a query: the live
// contacts of either sink.
func eachIDMillis(ctx context.Context, c *sql.Conn, q string, fn func(string, int64) error, args ...any) error {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var ms int64
		if err := rows.Scan(&id, &ms); err != nil {
			return err
		}
		if err := fn(id, ms); err != nil {
			return err
		}
	}
	return rows.Err()
}

// idList reads a query's single id column.
func idList(ctx context.Context, c *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
