package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Page sizes of the search endpoint.
const (
	MaxPageLimit     = 500
	DefaultPageLimit = MaxPageLimit
)

// ErrCursorStuck is returned when the API hands back a cursor that does not
// move past the previous one: following it would loop forever.
var ErrCursorStuck = errors.New("search cursor did not advance")

// ErrBadPage is returned when a search page cannot be decoded even after
// retries; nothing after it can be paged without its cursor.
var ErrBadPage = errors.New("malformed search page")

// Query selects the contacts of one location to page through.
type Query struct {
	PageLimit    int
	UpdatedSince time.Time // inclusive; zero for all
	UpdatedUntil time.Time // exclusive; zero for no bound
	After        []any     // resume after this searchAfter cursor
}

// Page is one page of contacts, raw, with the cursor of its last contact.
type Page struct {
	Number   int
	Contacts []json.RawMessage
	IDs      []string // ids of Contacts in order ("" where missing)
	Cursor   []any
	Total    int
}

// pageKey is what the paginator needs of each contact.
type pageKey struct {
	ID          string `json:"id"`
	SearchAfter []any  `json:"searchAfter"`
}

// SearchContacts pages through the contacts of q in cursor mode, sorted by
// dateUpdated ascending, and calls fn for each non-empty page in order. It
// stops at the first short page, at an empty page, or when fn errs.
func (c *Client) SearchContacts(ctx context.Context, q Query, fn func(Page) error) error {
	req := searchRequest(c.location, q)
	limit := req.PageLimit
	for n := 1; ; n++ {
		page, err := c.searchPage(ctx, req, n)
		if err != nil {
			return err
		}
		if len(page.Contacts) == 0 {
			return nil
		}
		if req.SearchAfter != nil && reflect.DeepEqual(normCursor(page.Cursor), normCursor(req.SearchAfter)) {
			return fmt.Errorf("search contacts page %d: %w (cursor %v)", n, ErrCursorStuck, page.Cursor)
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page.Contacts) < limit {
			return nil
		}
		req.SearchAfter = page.Cursor
	}
}

func searchRequest(location string, q Query) api.SearchRequest {
	limit := q.PageLimit
	if limit <= 0 || limit > MaxPageLimit {
		limit = DefaultPageLimit
	}
	req := api.SearchRequest{
		LocationID:  location,
		PageLimit:   limit,
		Sort:        []api.Sort{{Field: "dateUpdated", Direction: "asc"}},
		SearchAfter: q.After,
	}
	if !q.UpdatedSince.IsZero() || !q.UpdatedUntil.IsZero() {
		var r api.Range
		if !q.UpdatedSince.IsZero() {
			r.GTE = q.UpdatedSince.UTC().Format(time.RFC3339Nano)
		}
		if !q.UpdatedUntil.IsZero() {
			r.LT = q.UpdatedUntil.UTC().Format(time.RFC3339Nano)
		}
		req.Filters = []api.Filter{{Field: "dateUpdated", Operator: "range", Value: r}}
	}
	return req
}

// searchPage fetches and splits one page. A body that does not decode is
// fetched again (a truncated answer looks the same) before it is an error.
func (c *Client) searchPage(ctx context.Context, req api.SearchRequest, n int) (Page, error) {
	var lastErr error
	for attempt := 0; attempt <= 2; attempt++ {
		b, err := c.do(ctx, http.MethodPost, "/contacts/search", nil, req)
		if err != nil {
			return Page{}, fmt.Errorf("search contacts page %d: %w", n, err)
		}
		var resp api.SearchResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			lastErr = fmt.Errorf("search contacts page %d: %w: %v", n, ErrBadPage, err)
			continue
		}
		p := Page{Number: n, Contacts: resp.Contacts, Total: resp.Total, IDs: make([]string, len(resp.Contacts))}
		for i, raw := range resp.Contacts {
			var k pageKey
			_ = json.Unmarshal(raw, &k) // a bad record is transform's to reject
			p.IDs[i] = k.ID
			if i == len(resp.Contacts)-1 {
				p.Cursor = k.SearchAfter
			}
		}
		if len(p.Contacts) > 0 && len(p.Cursor) == 0 {
			return Page{}, fmt.Errorf("search contacts page %d: last contact has no searchAfter cursor: %w", n, ErrBadPage)
		}
		return p, nil
	}
	return Page{}, lastErr
}

// normCursor makes cursors comparable whatever number type they decoded to.
func normCursor(c []any) []string {
	out := make([]string, len(c))
	for i, v := range c {
		out[i] = fmt.Sprint(v)
	}
	return out
}

// Children fetches one contact's tasks, notes or appointments (each one
// request, not paginated). A body that is not the expected envelope comes
// back as problem with the body in raw, not as an error: the caller records
// a reject and goes on.
func (c *Client) Children(ctx context.Context, contactID, resource string) (items []json.RawMessage, raw []byte, problem string, err error) {
	path := "/contacts/" + pathEscape(contactID) + "/" + resource
	for attempt := 0; attempt <= 2; attempt++ {
		b, err := c.do(ctx, http.MethodGet, path, nil, nil)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s of contact %s: %w", resource, contactID, err)
		}
		items, err := splitChildren(b, resource)
		if err == nil {
			return items, nil, "", nil
		}
		raw, problem = b, fmt.Sprintf("malformed %s list: %v", resource, err)
	}
	return nil, raw, problem, nil
}

func splitChildren(b []byte, resource string) ([]json.RawMessage, error) {
	switch resource {
	case api.ResourceTasks:
		var r api.TasksResponse
		err := json.Unmarshal(b, &r)
		return r.Tasks, err
	case api.ResourceNotes:
		var r api.NotesResponse
		err := json.Unmarshal(b, &r)
		return r.Notes, err
	case api.ResourceAppointments:
		var r api.EventsResponse
		err := json.Unmarshal(b, &r)
		return r.Events, err
	}
	return nil, fmt.Errorf("unknown resource %q", resource)
}

func pathEscape(s string) string { return url.PathEscape(s) }
