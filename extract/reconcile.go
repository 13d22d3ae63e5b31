package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Resource names of the marks that are not search pages.
const (
	// MarkSweep marks the end of a chunk of a rolling sweep: the children
	// of Mark.IDs are complete.
	MarkSweep = "sweep"
	// MarkRetry marks the end of a chunk of contacts read again by id
	// (StreamContacts): the contacts of Mark.IDs and their children are
	// complete.
	MarkRetry = "retry"
)

// DefaultSweepChunk is how many contacts' children a sweep reads between
// marks.
const DefaultSweepChunk = 100

// ContactIDs lists the ids of every live contact of the location: the
// id-only reconciliation that finds deletes. The search endpoint cannot
// choose fields, so it pages at the largest page size and keeps only ids.
func (c *Client) ContactIDs(ctx context.Context) ([]string, error) {
	var ids []string
	var b strings.Builder
	err := c.SearchContacts(ctx, Query{PageLimit: MaxPageLimit}, func(p Page) error {
		// The page's ids are views of one string that also holds their
		// dateUpdated: a copy of the ids alone, in one allocation per
		// page, keeps only what the listing needs.
		n := 0
		for _, id := range p.IDs {
			n += len(id)
		}
		b.Reset()
		b.Grow(n)
		for _, id := range p.IDs {
			b.WriteString(id)
		}
		all := b.String()
		for _, id := range p.IDs {
			if id != "" {
				ids = append(ids, all[:len(id)])
			}
			all = all[len(id):]
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

// StreamContacts reads each of ids with GET /contacts/{id} and its
// opt.Children (the tasks of a chunk in batches with opt.BatchTasks), sending them with a Mark (Resource MarkRetry, IDs set)
// after every chunk. A contact the API no longer has (404) is left out of
// the stream and listed in the mark's Gone. It never closes out.
func StreamContacts(ctx context.Context, c *Client, ids []string, chunk int, opt StreamOptions, out chan<- api.Record) error {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if chunk <= 0 {
		chunk = DefaultSweepChunk
	}
	batch := opt.BatchTasks && slices.Contains(opt.Children, api.ResourceTasks)
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		children := opt.Children
		if batch {
			// The chunk's tasks first, so that its mark covers them.
			err := StreamContactTasks(ctx, c, part, out)
			switch {
			case err == nil:
				children = slices.DeleteFunc(slices.Clone(children), func(r string) bool { return r == api.ResourceTasks })
			case errors.Is(err, ErrNoBulkScope) || errors.Is(err, ErrUnusableBulk):
				batch = false
			default:
				return fmt.Errorf("read contacts again: %w", err)
			}
		}
		var mu sync.Mutex
		read := make([]string, 0, len(part))
		var gone []string
		g, gctx := errgroupWithLimit(ctx, opt.Concurrency)
		for _, id := range part {
			g.Go(func() error {
				b, err := c.do(gctx, http.MethodGet, "/contacts/"+pathEscape(id), nil, nil)
				var he *api.HTTPError
				if errors.As(err, &he) && he.Status == http.StatusNotFound {
					mu.Lock()
					gone = append(gone, id)
					mu.Unlock()
					return nil
				}
				if err != nil {
					return fmt.Errorf("contact %s: %w", id, err)
				}
				var cr api.ContactResponse
				if err := json.Unmarshal(b, &cr); err != nil || len(cr.Contact) == 0 || string(cr.Contact) == "null" {
					return send(gctx, out, api.Record{Resource: api.ResourceContacts, LocationID: c.location, Raw: b,
						Problem: "GET /contacts/{id} answer without a contact object"})
				}
				if err := send(gctx, out, api.Record{Resource: api.ResourceContacts, LocationID: c.location, Raw: cr.Contact}); err != nil {
					return err
				}
				for _, res := range children {
					if err := fetchChildren(gctx, c, id, res, out); err != nil {
						return err
					}
				}
				mu.Lock()
				read = append(read, id)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("read contacts again: %w", err)
		}
		if err := send(ctx, out, api.Record{Mark: &api.Mark{LocationID: c.location, Resource: MarkRetry, IDs: read, Gone: gone}}); err != nil {
			return err
		}
	}
	return nil
}
