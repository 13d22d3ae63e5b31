package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// LocationStats are one location's request counters in one run, stored as
// JSON in the runs table's locations column.
type LocationStats struct {
	Requests       int64  `json:"requests"`
	Retries        int64  `json:"retries"`
	RateLimited    int64  `json:"rate_limited"` // 429 answers
	Failures       int64  `json:"failures"`     // 5xx and transport failures
	WaitMs         int64  `json:"wait_ms"`      // waiting on the rate governor and backoff
	QuotaUsed      int64  `json:"quota_used"`   // of the daily quota, as the headers told it
	DailyRemaining int64  `json:"daily_remaining"`
	Stopped        string `json:"stopped,omitempty"` // why the location stopped early, e.g. "quota"
}

// LocationRecorder is implemented by sinks that keep per-location run
// statistics. RecordLocations is called after Finish, with the same run id.
type LocationRecorder interface {
	RecordLocations(ctx context.Context, runID string, locs map[string]LocationStats) error
}

var _ LocationRecorder = (*DuckDB)(nil)

// RecordLocations implements LocationRecorder.
func (d *DuckDB) RecordLocations(ctx context.Context, runID string, locs map[string]LocationStats) error {
	b, err := json.Marshal(locs)
	if err != nil {
		return fmt.Errorf("record locations of run %s: %w", runID, err)
	}
	err = d.session(ctx, func(c *sql.Conn) error {
		return exec(ctx, c, `UPDATE runs SET locations = ?::JSON WHERE run_id = ?`, string(b), runID)
	})
	if err != nil {
		return fmt.Errorf("record locations of run %s: %w", runID, err)
	}
	return nil
}
