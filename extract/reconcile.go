package extract

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Resource names of the marks that are not search pages.
const (
	// MarkSweep marks the end of a chunk of a rolling sweep: the children
	// of Mark.IDs are complete.
	MarkSweep = "sweep"
)

// DefaultSweepChunk is how many contacts' children a sweep reads between
// marks.
const DefaultSweepChunk = 100

// ContactIDs lists the ids of every live contact of the location: the
// id-only reconciliation that finds deletes. The search endpoint cannot
// choose fields, so it pages at the largest page size and keeps only ids.
func (c *Client) ContactIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.SearchContacts(ctx, Query{PageLimit: MaxPageLimit}, func(p Page) error {
		for _, id := range p.IDs {
			if id != "" {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list contact ids: %w", err)
	}
	return ids, nil
}

// StreamChildren reads opt.Children of each of ids (the rolling sweep) and
// sends them, with a Mark (Resource MarkSweep, IDs set) after every chunk
// of opt-bounded size. It never closes out.
func StreamChildren(ctx context.Context, c *Client, ids []string, chunk int, opt StreamOptions, out chan<- api.Record) error {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if chunk <= 0 {
		chunk = DefaultSweepChunk
	}
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		g, gctx := errgroupWithLimit(ctx, opt.Concurrency)
		for _, id := range part {
			for _, res := range opt.Children {
				g.Go(func() error { return fetchChildren(gctx, c, id, res, out) })
			}
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if err := send(ctx, out, api.Record{Mark: &api.Mark{LocationID: c.location, Resource: MarkSweep, IDs: part}}); err != nil {
			return err
		}
	}
	return nil
}

func errgroupWithLimit(ctx context.Context, n int) (*errgroup.Group, context.Context) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	return g, gctx
}
