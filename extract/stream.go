package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// DefaultConcurrency bounds the child requests in flight per location.
const DefaultConcurrency = 8

// ChildResources are the per-contact resources, in fetch order.
var ChildResources = []string{api.ResourceTasks, api.ResourceNotes, api.ResourceAppointments}

// StreamOptions says what Stream reads.
type StreamOptions struct {
	Query       Query
	Concurrency int      // child requests in flight; DefaultConcurrency if 0
	Children    []string // child resources to fetch per contact; nil: none
	// Skip, if set, says a contact's children need not be fetched.
	Skip func(contactID string) bool
	// Unchanged, if set, says a contact is already stored as it is, given
	// its dateUpdated as search returned it ("" if absent or not a string,
	// read once with the page): neither it nor its children are sent.
	Unchanged func(contactID, dateUpdated string) bool
	// BatchTasks, for StreamContacts, reads the tasks of each chunk of
	// contacts with tasks/search's contactId filter (StreamContactTasks)
	// instead of one request per contact, when Children has tasks. When
	// the endpoint refuses (no scope, unusable answer) the tasks are read
	// per contact from then on.
	BatchTasks bool
}

// Stream pages through the location's contacts and sends, for each page, the
// page's contacts, then the children of those contacts, then a Mark carrying
// the page's cursor. The next search page is fetched while the children of
// the current one are. Stream returns when the location is done (after a
// final Mark with Done set) or at the first error; it never closes out.
func Stream(ctx context.Context, c *Client, opt StreamOptions, out chan<- api.Record) error {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	// The search runs ahead by a page. When it fails, the pages it already
	// delivered are still fanned out: they are good data.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan Page, 1)
	var searchErr error
	go func() {
		defer close(pages)
		searchErr = c.SearchContacts(sctx, opt.Query, func(p Page) error {
			select {
			case pages <- p:
				return nil
			case <-sctx.Done():
				return sctx.Err()
			}
		})
	}()
	var fanErr error
	for p := range pages {
		if fanErr != nil {
			continue // drain until the search sees the cancel
		}
		if fanErr = fanOut(ctx, c, opt, p, out); fanErr != nil {
			cancel()
		}
	}
	if fanErr != nil {
		return fanErr
	}
	if searchErr != nil {
		return searchErr
	}
	return send(ctx, out, api.Record{Mark: &api.Mark{LocationID: c.location, Resource: api.ResourceContacts, Done: true}})
}

func fanOut(ctx context.Context, c *Client, opt StreamOptions, p Page, out chan<- api.Record) error {
	fetch := make([]string, 0, len(p.IDs))
	updated := make([]string, 0, len(p.IDs))
	for i, raw := range p.Contacts {
		id := p.IDs[i]
		var u string
		if i < len(p.Updated) {
			u = p.Updated[i]
		}
		if id != "" && opt.Unchanged != nil && i < len(p.Updated) && opt.Unchanged(id, u) {
			continue
		}
		if id != "" && (opt.Skip == nil || !opt.Skip(id)) {
			fetch = append(fetch, id)
			updated = append(updated, u)
		}
		if err := send(ctx, out, api.Record{Resource: api.ResourceContacts, LocationID: c.location, Raw: raw}); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Concurrency)
	for _, id := range fetch {
		for _, res := range opt.Children {
			g.Go(func() error { return fetchChildren(gctx, c, id, res, out) })
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("page %d: %w", p.Number, err)
	}
	return send(ctx, out, api.Record{Mark: &api.Mark{
		LocationID: c.location, Resource: api.ResourceContacts, Cursor: p.Cursor, Contacts: len(p.Contacts), IDs: fetch,
		Updated: updated,
	}})
}

func fetchChildren(ctx context.Context, c *Client, contactID, res string, out chan<- api.Record) error {
	items, raw, problem, err := c.Children(ctx, contactID, res)
	var he *api.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return nil // deleted since the search: nothing to read
	}
	if err != nil {
		return err
	}
	if problem != "" {
		return send(ctx, out, api.Record{Resource: res, LocationID: c.location, ContactID: contactID, Raw: raw, Problem: problem})
	}
	for _, it := range items {
		if err := send(ctx, out, api.Record{Resource: res, LocationID: c.location, ContactID: contactID, Raw: it}); err != nil {
			return err
		}
	}
	return nil
}

func send(ctx context.Context, out chan<- api.Record, r api.Record) error {
	select {
	case out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
