package load

import (
	"context"
	"errors"
	"time"
)

// errParquetState is returned until the Parquet sink keeps its own state.
var errParquetState = errors.New("the parquet warehouse keeps no contact state yet")

// LiveContacts implements Store.
func (p *Parquet) LiveContacts(ctx context.Context, source, location string) (map[string]int64, error) {
	return nil, errParquetState
}

// SweepCandidates implements Store.
func (p *Parquet) SweepCandidates(ctx context.Context, source, location string, n int, sweptBefore time.Time) ([]string, int, error) {
	return nil, 0, errParquetState
}

// LastReconcile implements Store.
func (p *Parquet) LastReconcile(ctx context.Context, source, location string) (time.Time, error) {
	return time.Time{}, errParquetState
}

// Status implements Store.
func (p *Parquet) Status(ctx context.Context, source string) (*Status, error) {
	return nil, errParquetState
}
