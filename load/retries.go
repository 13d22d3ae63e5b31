package load

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// retryCap is MaxRetriesPerLocation; tests lower it.
var retryCap = MaxRetriesPerLocation

// validateRetries checks the retry state of a commit.
func validateRetries(c *Commit) error {
	for _, k := range c.RetriesDone {
		if k.Source == "" || k.LocationID == "" || k.ContactID == "" {
			return fmt.Errorf("retry done %+v: Source, LocationID and ContactID are required", k)
		}
	}
	for _, r := range c.Retries {
		if r.Source == "" || r.LocationID == "" || r.ContactID == "" || r.At.IsZero() {
			return fmt.Errorf("retry %s/%s/%s: Source, LocationID, ContactID and At are required", r.Source, r.LocationID, r.ContactID)
		}
	}
	return nil
}

// commitRetries is rs with one entry per key (the last given), At in UTC
// to the microsecond and the read-back fields cleared.
func commitRetries(rs []Retry) []Retry {
	var out []Retry
	at := map[RetryKey]int{}
	for _, r := range rs {
		r.At = r.At.UTC().Truncate(time.Microsecond)
		r.Attempts, r.FirstAt, r.LastAt = 0, time.Time{}, time.Time{}
		if i, ok := at[r.Key()]; ok {
			out[i] = r
			continue
		}
		at[r.Key()] = len(out)
		out = append(out, r)
	}
	return out
}

// retryKeep orders the rows of one location by how much they are worth
// keeping under the cap: fewest attempts, then most recently attempted,
// then the greatest ContactID (the reverse of the drop order).
func retryKeep(a, b Retry) int {
	return cmpAll(cmp.Compare(a.Attempts, b.Attempts), b.LastAt.Compare(a.LastAt), strings.Compare(b.ContactID, a.ContactID))
}

// retryOrder is the order PendingRetries and Status list rows in.
func retryOrder(a, b Retry) int {
	return cmpAll(strings.Compare(a.Source, b.Source), strings.Compare(a.LocationID, b.LocationID),
		a.FirstAt.Compare(b.FirstAt), strings.Compare(a.ContactID, b.ContactID))
}

// applyRetries returns have (the Parquet ledger's rows) with c's
// RetriesDone and then Retries applied, capped, in retryOrder. It does not
// modify have.
func applyRetries(have []Retry, c *Commit) []Retry {
	if len(c.RetriesDone)+len(c.Retries) == 0 {
		return have
	}
	done := map[RetryKey]bool{}
	for _, k := range c.RetriesDone {
		done[k] = true
	}
	var out []Retry
	at := map[RetryKey]int{}
	for _, r := range have {
		if !done[r.Key()] {
			at[r.Key()] = len(out)
			out = append(out, r)
		}
	}
	type loc struct{ source, location string }
	touched := map[loc]bool{}
	for _, r := range commitRetries(c.Retries) {
		touched[loc{r.Source, r.LocationID}] = true
		i, ok := at[r.Key()]
		if !ok {
			r.Attempts, r.FirstAt, r.LastAt, r.At = 1, r.At, r.At, time.Time{}
			at[r.Key()] = len(out)
			out = append(out, r)
			continue
		}
		o := &out[i]
		o.Attempts++
		o.LastAt = r.At
		o.Resource, o.RecordID, o.Reason, o.RunID = r.Resource, r.RecordID, r.Reason, r.RunID
	}
	drop := map[RetryKey]bool{}
	for l := range touched {
		var rows []Retry
		for _, r := range out {
			if r.Source == l.source && r.LocationID == l.location {
				rows = append(rows, r)
			}
		}
		if len(rows) <= retryCap {
			continue
		}
		slices.SortFunc(rows, retryKeep)
		for _, r := range rows[retryCap:] {
			drop[r.Key()] = true
		}
	}
	out = slices.DeleteFunc(out, func(r Retry) bool { return drop[r.Key()] })
	slices.SortFunc(out, retryOrder)
	return out
}

// writeRetries applies the commit's retry state inside the DuckDB sink's
// transaction.
func writeRetries(ctx context.Context, c *sql.Conn, cm *Commit) error {
	for _, k := range cm.RetriesDone {
		if err := exec(ctx, c, `DELETE FROM retries WHERE source = ? AND location_id = ? AND contact_id = ?`,
			k.Source, k.LocationID, k.ContactID); err != nil {
			return fmt.Errorf("retries done: %w", err)
		}
	}
	type loc struct{ source, location string }
	var touched []loc
	for _, r := range commitRetries(cm.Retries) {
		if l := (loc{r.Source, r.LocationID}); !slices.Contains(touched, l) {
			touched = append(touched, l)
		}
		n, err := execN(ctx, c, `UPDATE retries SET attempts = attempts + 1, resource = ?, record_id = ?, reason = ?, run_id = ?, last_at = ?
			WHERE source = ? AND location_id = ? AND contact_id = ?`,
			r.Resource, nullString(r.RecordID), nullString(r.Reason), r.RunID, r.At, r.Source, r.LocationID, r.ContactID)
		if err != nil {
			return fmt.Errorf("retry %s/%s: %w", r.LocationID, r.ContactID, err)
		}
		if n > 0 {
			continue
		}
		if err := exec(ctx, c, `INSERT INTO retries (source, location_id, contact_id, resource, record_id, reason, run_id, attempts, first_at, last_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
			r.Source, r.LocationID, r.ContactID, r.Resource, nullString(r.RecordID), nullString(r.Reason), r.RunID, r.At, r.At); err != nil {
			return fmt.Errorf("retry %s/%s: %w", r.LocationID, r.ContactID, err)
		}
	}
	for _, l := range touched {
		if err := exec(ctx, c, `DELETE FROM retries WHERE source = ? AND location_id = ? AND contact_id IN (
			SELECT contact_id FROM (SELECT contact_id, row_number() OVER (ORDER BY attempts, last_at DESC, contact_id DESC) AS n
				FROM retries WHERE source = ? AND location_id = ?) WHERE n > ?)`,
			l.source, l.location, l.source, l.location, retryCap); err != nil {
			return fmt.Errorf("retries cap of %s: %w", l.location, err)
		}
	}
	return nil
}

const retryColumns = `source, location_id, contact_id, resource, coalesce(record_id, ''), coalesce(reason, ''), run_id, attempts, first_at, last_at`

// readRetries returns the rows of the DuckDB query q (selecting
// retryColumns) with args.
func readRetries(ctx context.Context, c *sql.Conn, q string, args ...any) ([]Retry, error) {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []Retry
	for rows.Next() {
		var r Retry
		if err := rows.Scan(&r.Source, &r.LocationID, &r.ContactID, &r.Resource, &r.RecordID, &r.Reason, &r.RunID,
			&r.Attempts, &r.FirstAt, &r.LastAt); err != nil {
			rows.Close()
			return nil, err
		}
		r.FirstAt, r.LastAt = r.FirstAt.UTC(), r.LastAt.UTC()
		out = append(out, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	return out, nil
}

// PendingRetries implements Store.
func (d *DuckDB) PendingRetries(ctx context.Context, source, location string, maxAttempts int) ([]Retry, error) {
	var out []Retry
	err := d.session(ctx, func(c *sql.Conn) error {
		var err error
		out, err = readRetries(ctx, c, `SELECT `+retryColumns+` FROM retries
			WHERE source = ? AND location_id = ? AND attempts < ? ORDER BY first_at, contact_id`, source, location, maxAttempts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending retries of %s: %w", location, err)
	}
	return out, nil
}

// PendingRetries implements Store.
func (p *Parquet) PendingRetries(ctx context.Context, source, location string, maxAttempts int) ([]Retry, error) {
	l, err := p.load()
	if err != nil {
		return nil, fmt.Errorf("pending retries of %s: %w", location, err)
	}
	var out []Retry
	for _, r := range l.Retries {
		if r.Source == source && r.LocationID == location && r.Attempts < maxAttempts {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, retryOrder)
	return out, nil
}

// retriesView is the retries view of the Parquet ledger.
func retriesView(l *ledger) string {
	var rows [][]string
	for _, r := range l.Retries {
		rows = append(rows, []string{lit(r.Source), lit(r.LocationID), lit(r.ContactID), sqlString(r.Resource), lit(r.RecordID),
			lit(r.Reason), sqlString(r.RunID), fmt.Sprint(r.Attempts), tlit(r.FirstAt), tlit(r.LastAt)})
	}
	return fmt.Sprintf("CREATE OR REPLACE VIEW retries AS\n%s;\n\n", valuesView(
		[]string{"source", "location_id", "contact_id", "resource", "record_id", "reason", "run_id", "attempts", "first_at", "last_at"},
		[]string{"VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "TIMESTAMPTZ", "TIMESTAMPTZ"}, rows))
}
