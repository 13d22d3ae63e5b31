package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Page sizes of the search endpoint.
const (
	MaxPageLimit     = 500
	DefaultPageLimit = MaxPageLimit
)

// ErrCursorStuck is returned (in a *StuckCursorError) when the API hands
// back a cursor that does not move past the previous one: following it
// would loop forever. What was read before it is good.
var ErrCursorStuck = errors.New("search cursor did not advance")

// ErrBadPage is returned when a search page cannot be decoded even after
// retries; nothing after it can be paged without its cursor.
var ErrBadPage = errors.New("malformed search page")

// ErrNoContacts is returned (with ErrBadPage) when a search answer has no
// contacts field: an answer we do not understand is never an empty page.
var ErrNoContacts = errors.New("search answer has no contacts field")

// ErrPageWindow is returned when page mode cannot stay under the API's
// 10,000-result cap: more than that many contacts share one dateUpdated.
var ErrPageWindow = errors.New("too many contacts in one millisecond for page mode")

// MaxPageWindow is the most results page mode reaches (page * pageLimit).
const MaxPageWindow = 10_000

// StuckCursorError says which cursor the API sent again.
type StuckCursorError struct {
	Page   int
	Cursor json.RawMessage // exactly as the API sent it
}

func (e *StuckCursorError) Error() string {
	return fmt.Sprintf("search contacts page %d: %v: the API sent cursor %s again", e.Page, ErrCursorStuck, e.Cursor)
}

func (e *StuckCursorError) Unwrap() error { return ErrCursorStuck }

// Query selects the contacts of one location to page through.
type Query struct {
	PageLimit    int
	UpdatedSince time.Time // inclusive; zero for all
	UpdatedUntil time.Time // exclusive; zero for no bound
	After        []any     // resume after this searchAfter cursor
}

// Page is one page of contacts, raw, with the cursor of its last contact.
// Cursor numbers are json.Number, so a cursor goes back to the API exactly
// as it came. In page mode (results without searchAfter) Cursor is made of
// the last contact's dateUpdated (epoch ms) and id, and PageMode is set.
type Page struct {
	Number   int
	Contacts []json.RawMessage
	IDs      []string // ids of Contacts in order ("" where missing)
	Updated  []string // dateUpdated of Contacts in order, as sent ("" where missing)
	Cursor   []any
	Total    int
	PageMode bool

	rawCursor json.RawMessage
	lastMs    int64 // dateUpdated of the last contact; -1 if unreadable
}

// pageKey is what the paginator needs of each contact.
type pageKey struct {
	ID          string          `json:"id"`
	SearchAfter json.RawMessage `json:"searchAfter"`
	DateUpdated string          `json:"dateUpdated"`
}

// SearchContacts pages through the contacts of q sorted by dateUpdated
// ascending, and calls fn for each non-empty page in order. It stops at the
// first short page, at an empty page, or when fn errs. It pages in cursor
// mode; when results come without searchAfter it falls back to page mode
// inside dateUpdated windows (see searchPaged). A cursor that does not
// advance ends it with a *StuckCursorError.
func (c *Client) SearchContacts(ctx context.Context, q Query, fn func(Page) error) error {
	req := searchRequest(c.location, q)
	limit := req.PageLimit
	prev := normCursor(req.SearchAfter)
	for n := 1; ; n++ {
		page, err := c.searchPage(ctx, req, n)
		if err != nil {
			return err
		}
		if len(page.Contacts) == 0 {
			return nil
		}
		if page.rawCursor == nil {
			// No searchAfter: page mode from where cursor mode got.
			if req.SearchAfter != nil {
				ms, ok := cursorMs(req.SearchAfter)
				if !ok {
					return fmt.Errorf("search contacts page %d: cannot resume page mode after cursor %v: %w", n, req.SearchAfter, ErrBadPage)
				}
				q.UpdatedSince = time.UnixMilli(ms).UTC()
			}
			return c.searchPaged(ctx, q, n, fn)
		}
		if req.SearchAfter != nil && slices.Equal(normCursor(page.Cursor), prev) {
			return &StuckCursorError{Page: n, Cursor: page.rawCursor}
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page.Contacts) < limit {
			return nil
		}
		req.SearchAfter, prev = page.Cursor, normCursor(page.Cursor)
	}
}

// searchPaged pages through q in page mode, for an API whose results carry
// no cursor. Page mode stops at MaxPageWindow results, so it reads the
// window [since, until) page by page and, when the cap is reached, carries
// on with a new window from the last dateUpdated read (inclusive: ties are
// read twice, which the idempotent merge absorbs). Page numbers given to fn
// continue from n.
func (c *Client) searchPaged(ctx context.Context, q Query, n int, fn func(Page) error) error {
	if q.After != nil {
		if ms, ok := cursorMs(q.After); ok && time.UnixMilli(ms).After(q.UpdatedSince) {
			q.UpdatedSince = time.UnixMilli(ms).UTC()
		}
		q.After = nil
	}
	base := searchRequest(c.location, q)
	limit := base.PageLimit
	maxPage := MaxPageWindow / limit
	for {
		req := base
		var last Page
		for p := 1; p <= maxPage; p, n = p+1, n+1 {
			req.Page = p
			page, err := c.searchPage(ctx, req, n)
			if err != nil {
				return err
			}
			page.PageMode = true
			if len(page.Contacts) == 0 {
				return nil
			}
			if page.lastMs < 0 {
				return fmt.Errorf("search contacts page %d: last contact has no usable dateUpdated for page mode: %w", n, ErrBadPage)
			}
			page.Cursor = []any{json.Number(strconv.FormatInt(page.lastMs, 10)), page.IDs[len(page.IDs)-1]}
			if err := fn(page); err != nil {
				return err
			}
			if len(page.Contacts) < limit {
				return nil
			}
			last = page
		}
		// The cap: a new window from the last dateUpdated read.
		from := time.UnixMilli(last.lastMs).UTC()
		if !from.After(q.UpdatedSince) {
			return fmt.Errorf("search contacts page %d: %w (%s)", n, ErrPageWindow, from.Format(time.RFC3339Nano))
		}
		q.UpdatedSince = from
		base = searchRequest(c.location, q)
	}
}

// cursorMs reads the sort value (epoch ms) of a cursor, whatever number
// type it decoded to.
func cursorMs(c []any) (int64, bool) {
	if len(c) == 0 {
		return 0, false
	}
	switch v := c[0].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		f, err := v.Float64()
		return int64(f), err == nil
	case float64:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	case string:
		i, err := strconv.ParseInt(v, 10, 64)
		return i, err == nil
	}
	return 0, false
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
// fetched again (a truncated answer looks the same) before it is an error;
// so is an answer without a contacts field (ErrNoContacts).
func (c *Client) searchPage(ctx context.Context, req api.SearchRequest, n int) (Page, error) {
	var lastErr error
	for attempt := 0; attempt <= 2; attempt++ {
		b, err := c.do(ctx, http.MethodPost, "/contacts/search", nil, req)
		if err != nil {
			return Page{}, fmt.Errorf("search contacts page %d: %w", n, err)
		}
		sp, err := readPage(b, req.PageLimit)
		if err != nil {
			lastErr = fmt.Errorf("search contacts page %d: %w: %v", n, ErrBadPage, err)
			continue
		}
		if sp.items == nil {
			lastErr = fmt.Errorf("search contacts page %d: %w: %w", n, ErrBadPage, ErrNoContacts)
			continue
		}
		p := Page{Number: n, Contacts: sp.items, Total: sp.n, IDs: sp.ids, Updated: sp.updated, lastMs: -1}
		if len(p.Contacts) == 0 {
			return p, nil
		}
		if t, err := time.Parse(time.RFC3339Nano, p.Updated[len(p.Updated)-1]); err == nil {
			p.lastMs = t.UnixMilli()
		}
		if len(sp.after) > 0 && string(sp.after) != "null" {
			d := json.NewDecoder(bytes.NewReader(sp.after))
			d.UseNumber()
			if err := d.Decode(&p.Cursor); err != nil || len(p.Cursor) == 0 {
				return Page{}, fmt.Errorf("search contacts page %d: unusable searchAfter %s: %w", n, sp.after, ErrBadPage)
			}
			p.rawCursor = json.RawMessage(sp.after)
		}
		return p, nil
	}
	return Page{}, lastErr
}

// readPage splits a search answer in one pass (splitter). When the
// splitter refuses it, encoding/json decodes it the way it always did: it
// says why the page is bad, and it has the last word should the two ever
// disagree.
func readPage(b []byte, limit int) (splitter, error) {
	sp := splitter{list: "contacts", total: "total", keys: true, hint: limit}
	if sp.split(b) {
		return sp, nil
	}
	return decodePage(b)
}

// decodePage is readPage with encoding/json: the page into
// api.SearchResponse, then each contact into pageKey.
func decodePage(b []byte) (splitter, error) {
	var resp api.SearchResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return splitter{}, err
	}
	sp := splitter{items: resp.Contacts, n: resp.Total}
	if resp.Contacts == nil {
		return sp, nil
	}
	sp.ids, sp.updated = make([]string, len(resp.Contacts)), make([]string, len(resp.Contacts))
	for i, raw := range resp.Contacts {
		var k pageKey
		_ = json.Unmarshal(raw, &k) // a bad record is transform's to reject
		sp.ids[i], sp.updated[i], sp.after = k.ID, k.DateUpdated, k.SearchAfter
	}
	return sp, nil
}

// normCursor makes cursors comparable whatever number type they decoded to.
func normCursor(c []any) []string {
	out := make([]string, len(c))
	for i, v := range c {
		switch v := v.(type) {
		case float64:
			out[i] = strconv.FormatFloat(v, 'f', -1, 64)
		case json.Number:
			if f, err := v.Float64(); err == nil && !strings.ContainsAny(string(v), ".eE") {
				out[i] = string(v)
			} else if err == nil {
				out[i] = strconv.FormatFloat(f, 'f', -1, 64)
			} else {
				out[i] = string(v)
			}
		default:
			out[i] = fmt.Sprint(v)
		}
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

// splitChildren splits a child list in one pass (splitList); when that
// refuses the body, encoding/json decodes it as it always did, and says
// why.
func splitChildren(b []byte, resource string) ([]json.RawMessage, error) {
	if name := childList(resource); name != "" {
		if items, ok := splitList(b, name); ok {
			return items, nil
		}
	}
	return decodeChildren(b, resource)
}

// childList is the field of a child resource's list in its answer.
func childList(resource string) string {
	switch resource {
	case api.ResourceTasks:
		return "tasks"
	case api.ResourceNotes:
		return "notes"
	case api.ResourceAppointments:
		return "events"
	}
	return ""
}

// decodeChildren is splitChildren with encoding/json.
func decodeChildren(b []byte, resource string) ([]json.RawMessage, error) {
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

// pathEscape escapes s as one path segment, for the paths given to do:
// '/', '%', '?', '#', ' ' and non-ASCII are escaped, once.
func pathEscape(s string) string { return url.PathEscape(s) }
