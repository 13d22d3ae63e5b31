package load

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// Status is what `contacts-etl status` shows of one source.
type Status struct {
	LastRun   *RunInfo // nil when no run was recorded
	Locations []LocationStatus
}

// RunInfo is one row of the runs table.
type RunInfo struct {
	ID, Command, Outcome string
	StartedAt, EndedAt   time.Time
	Requests             int64
}

// LocationStatus is the state of one location's contacts.
type LocationStatus struct {
	LocationID    string
	Watermark     time.Time // zero when none
	Windows       []Window  // ledger entries (contacts), by start
	Rejects       int64
	Live          int64     // contacts not soft-deleted
	Deleted       int64     // soft-deleted contacts
	Swept         int64     // live contacts whose children were ever read in full
	OldestSweep   time.Time // the least recently swept live contact's time
	LastReconcile time.Time
	// Retries are all retry rows of the location, pending or exhausted,
	// by FirstAt then ContactID (see Store.PendingRetries).
	Retries []Retry
}

// Status reads the state of source. It opens the file like a commit does.
func (d *DuckDB) Status(ctx context.Context, source string) (*Status, error) {
	out := &Status{}
	err := d.session(ctx, func(c *sql.Conn) error {
		var ri RunInfo
		var ended sql.NullTime
		var reqs sql.NullInt64
		err := c.QueryRowContext(ctx, `SELECT run_id, command, outcome, started_at, ended_at, requests FROM runs
			WHERE source = ? ORDER BY started_at DESC LIMIT 1`, source).Scan(&ri.ID, &ri.Command, &ri.Outcome, &ri.StartedAt, &ended, &reqs)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return fmt.Errorf("runs: %w", err)
		default:
			ri.EndedAt, ri.Requests = ended.Time, reqs.Int64
			out.LastRun = &ri
		}
		st, err := readState(ctx, c, source)
		if err != nil {
			return err
		}
		locs := map[string]*LocationStatus{}
		get := func(id string) *LocationStatus {
			if locs[id] == nil {
				locs[id] = &LocationStatus{LocationID: id}
			}
			return locs[id]
		}
		for _, w := range st.Watermarks {
			if w.Resource == "contacts" {
				get(w.LocationID).Watermark = w.Value
			}
		}
		for _, w := range st.Windows {
			l := get(w.LocationID)
			l.Windows = append(l.Windows, w)
		}
		q := func(query string, scan func(*sql.Rows) error) error {
			rows, err := c.QueryContext(ctx, query, source)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := scan(rows); err != nil {
					return err
				}
			}
			return rows.Err()
		}
		if err := q(`SELECT _location_id, count(*) FROM rejects WHERE _source = ? GROUP BY ALL`, func(r *sql.Rows) error {
			var id string
			var n int64
			err := r.Scan(&id, &n)
			get(id).Rejects = n
			return err
		}); err != nil {
			return fmt.Errorf("rejects: %w", err)
		}
		if err := q(`SELECT k._location_id, count(*) FILTER (WHERE k._deleted_at IS NULL), count(*) FILTER (WHERE k._deleted_at IS NOT NULL),
				count(s.swept_at) FILTER (WHERE k._deleted_at IS NULL), min(s.swept_at) FILTER (WHERE k._deleted_at IS NULL)
			FROM contacts k LEFT JOIN sweeps s ON s.source = k._source AND s.location_id = k._location_id AND s.contact_id = k.contact_id
			WHERE k._source = ? GROUP BY ALL`, func(r *sql.Rows) error {
			var id string
			var oldest sql.NullTime
			var l LocationStatus
			if err := r.Scan(&id, &l.Live, &l.Deleted, &l.Swept, &oldest); err != nil {
				return err
			}
			g := get(id)
			g.Live, g.Deleted, g.Swept, g.OldestSweep = l.Live, l.Deleted, l.Swept, oldest.Time.UTC()
			return nil
		}); err != nil {
			return fmt.Errorf("contacts: %w", err)
		}
		if err := q(`SELECT location_id, max(reconciled_at) FROM reconciles WHERE source = ? GROUP BY ALL`, func(r *sql.Rows) error {
			var id string
			var at time.Time
			err := r.Scan(&id, &at)
			get(id).LastReconcile = at.UTC()
			return err
		}); err != nil {
			return fmt.Errorf("reconciles: %w", err)
		}
		retries, err := readRetries(ctx, c, `SELECT `+retryColumns+` FROM retries WHERE source = ?
			ORDER BY location_id, first_at, contact_id`, source)
		if err != nil {
			return fmt.Errorf("retries: %w", err)
		}
		for _, r := range retries {
			g := get(r.LocationID)
			g.Retries = append(g.Retries, r)
		}
		for _, l := range locs {
			out.Locations = append(out.Locations, *l)
		}
		sort.Slice(out.Locations, func(i, j int) bool { return out.Locations[i].LocationID < out.Locations[j].LocationID })
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", d.path, err)
	}
	return out, nil
}
