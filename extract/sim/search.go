package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Limits of the paging endpoints.
const (
	MaxPageLimit   = 500
	MaxPageWindow  = 10_000
	DefaultListLim = 20
	MaxListLimit   = 100
)

type searchBody struct {
	LocationID  *string           `json:"locationId"`
	PageLimit   *int              `json:"pageLimit"`
	Page        *int              `json:"page"`
	SearchAfter []json.RawMessage `json:"searchAfter"`
	Sort        []api.Sort        `json:"sort"`
	Filters     []struct {
		Field    string          `json:"field"`
		Operator string          `json:"operator"`
		Value    json.RawMessage `json:"value"`
	} `json:"filters"`
}

// span is a range of epoch ms, [lo, hi].
type span struct{ lo, hi int64 }

type rangeFilter struct {
	byAdded bool
	span
}

func parseTime(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		v, err := n.Int64()
		return v, err == nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// parseRange reads {"gte","gt","lte","lt"} into an inclusive span.
func parseRange(raw json.RawMessage) (span, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return span{}, false
	}
	sp := span{lo: -1 << 62, hi: 1 << 62}
	for k, v := range m {
		ms, ok := parseTime(v)
		if !ok {
			return span{}, false
		}
		switch k {
		case "gte":
			sp.lo = max(sp.lo, ms)
		case "gt":
			sp.lo = max(sp.lo, ms+1)
		case "lte":
			sp.hi = min(sp.hi, ms)
		case "lt":
			sp.hi = min(sp.hi, ms-1)
		default:
			return span{}, false
		}
	}
	return sp, true
}

// search serves POST /contacts/search.
func (s *Server) search(r *http.Request, body []byte, g *grant) reply {
	var req searchBody
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&req); err != nil {
		return s.errReply(http.StatusUnprocessableEntity, []string{"body must be a valid JSON object"})
	}
	var errs []string
	if req.LocationID == nil || *req.LocationID == "" {
		errs = append(errs, "locationId should not be empty")
	}
	limit := 0
	switch {
	case req.PageLimit == nil:
		errs = append(errs, "pageLimit should not be empty")
	case *req.PageLimit < 1:
		errs = append(errs, "pageLimit must not be less than 1")
	case *req.PageLimit > MaxPageLimit:
		errs = append(errs, "pageLimit must not be greater than 500")
	default:
		limit = *req.PageLimit
	}
	page := 0
	if req.Page != nil {
		page = *req.Page
		if page < 1 {
			errs = append(errs, "page must not be less than 1")
		}
	}
	if req.Page != nil && req.SearchAfter != nil {
		errs = append(errs, "page and searchAfter cannot be used together")
	}
	var afterMs int64
	var afterID string
	if req.SearchAfter != nil {
		ok := len(req.SearchAfter) == 2
		if ok {
			afterMs, ok = parseTime(req.SearchAfter[0])
		}
		if ok {
			ok = json.Unmarshal(req.SearchAfter[1], &afterID) == nil
		}
		if !ok {
			errs = append(errs, "searchAfter must be an array of [sortValue, id]")
		}
	}
	byAdded, desc := false, false
	if len(req.Sort) > 0 {
		switch req.Sort[0].Field {
		case "dateUpdated":
		case "dateAdded":
			byAdded = true
		default:
			errs = append(errs, "sort.0.field must be one of the following values: dateUpdated, dateAdded")
		}
		switch strings.ToLower(req.Sort[0].Direction) {
		case "asc", "":
		case "desc":
			desc = true
		default:
			errs = append(errs, "sort.0.direction must be one of the following values: asc, desc")
		}
	}
	var filters []rangeFilter
	for i, f := range req.Filters {
		sp, ok := parseRange(f.Value)
		if (f.Field != "dateUpdated" && f.Field != "dateAdded") || f.Operator != "range" || !ok {
			errs = append(errs, "filters."+strconv.Itoa(i)+" is not supported: use field dateUpdated or dateAdded, operator range, value {gte, gt, lte, lt}")
			continue
		}
		filters = append(filters, rangeFilter{byAdded: f.Field == "dateAdded", span: sp})
	}
	if page > 0 && limit > 0 && page*limit > MaxPageWindow {
		errs = append(errs, "page * pageLimit must not be greater than 10000: use searchAfter to page further")
	}
	if errs != nil {
		return s.errReply(http.StatusUnprocessableEntity, errs)
	}
	if *req.LocationID != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	l := s.location(*req.LocationID)
	if l == nil {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	sn := s.snapshot(l)
	items, key := sn.byUpd, func(c *contact) int64 { return c.updMs }
	if byAdded {
		items, key = sn.byAdd, func(c *contact) int64 { return c.addMs }
	}
	var other []rangeFilter
	for _, f := range filters {
		if f.byAdded != byAdded {
			other = append(other, f)
			continue
		}
		lo := sort.Search(len(items), func(i int) bool { return key(items[i]) >= f.lo })
		hi := sort.Search(len(items), func(i int) bool { return key(items[i]) > f.hi })
		items = items[lo:max(lo, hi)]
	}
	if other != nil {
		items = slices.DeleteFunc(slices.Clone(items), func(c *contact) bool {
			for _, f := range other {
				v := c.updMs
				if f.byAdded {
					v = c.addMs
				}
				if v < f.lo || v > f.hi {
					return true
				}
			}
			return false
		})
	}
	if desc {
		items = slices.Clone(items)
		slices.Reverse(items)
	}
	start := 0
	switch {
	case page > 0:
		start = (page - 1) * limit
	case req.SearchAfter != nil:
		start = sort.Search(len(items), func(i int) bool {
			k, id := key(items[i]), items[i].c.ID
			if desc {
				return k < afterMs || (k == afterMs && id < afterID)
			}
			return k > afterMs || (k == afterMs && id > afterID)
		})
		if k := s.cfg.Bad.SearchStuckAtPage; k >= 2 && start >= limit && start/limit+1 == k {
			start -= limit
		}
	}
	start = min(start, len(items))
	pageItems := items[start:min(start+limit, len(items))]
	bad := s.cfg.Bad
	if bad.SearchOmitsContacts {
		return jsonReply(http.StatusOK, []byte(`{"total":`+strconv.Itoa(len(items))+`}`))
	}
	b := make([]byte, 0, 64+len(pageItems)*1200)
	b = append(b, `{"contacts":[`...)
	for i, c := range pageItems {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendSearch(b, c, key(c), !bad.SearchOmitsCursor)
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(len(items)), 10)
	b = append(b, '}')
	if k := bad.MalformedSearchPage; k >= 1 && start/limit+1 == k && len(pageItems) > 0 {
		b = b[:len(b)*2/3] // cut mid-record, every time it is asked for
	}
	return jsonReply(http.StatusOK, b)
}

func (s *Server) location(id string) *location {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.locByID[id]
}

// list serves the deprecated GET /contacts/, ordered by dateAdded then id.
func (s *Server) list(r *http.Request, _ []byte, g *grant) reply {
	q := r.URL.Query()
	loc := q.Get("locationId")
	var errs []string
	if loc == "" {
		errs = append(errs, "locationId should not be empty")
	}
	limit := DefaultListLim
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			errs = append(errs, "limit must be a number")
		case n < 1:
			errs = append(errs, "limit must not be less than 1")
		case n > MaxListLimit:
			errs = append(errs, "limit must not be greater than 100")
		default:
			limit = n
		}
	}
	var afterMs int64
	hasAfter := q.Get("startAfter") != ""
	if hasAfter {
		n, err := strconv.ParseInt(q.Get("startAfter"), 10, 64)
		if err != nil {
			errs = append(errs, "startAfter must be a number")
		}
		afterMs = n
	}
	afterID := q.Get("startAfterId")
	if errs != nil {
		return s.errReply(http.StatusUnprocessableEntity, errs)
	}
	if loc != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	l := s.location(loc)
	if l == nil {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	items := s.snapshot(l).byAdd
	start := 0
	if hasAfter {
		start = sort.Search(len(items), func(i int) bool {
			c := items[i]
			if afterID == "" {
				return c.addMs > afterMs
			}
			return c.addMs > afterMs || (c.addMs == afterMs && c.c.ID > afterID)
		})
	}
	pageItems := items[start:min(start+limit, len(items))]
	cur := start/limit + 1
	meta := api.ListMeta{Total: len(items), CurrentPage: cur}
	if cur > 1 {
		p := cur - 1
		meta.PrevPage = &p
	}
	if n := len(pageItems); n > 0 {
		last := pageItems[n-1]
		meta.StartAfter, meta.StartAfterID = last.addMs, last.c.ID
		if k := s.cfg.Bad.ListRepeatAtPage; k >= 2 && cur == k && hasAfter {
			meta.StartAfter, meta.StartAfterID = afterMs, afterID
		}
		if start+n < len(items) {
			p := cur + 1
			meta.NextPage = &p
			v := url.Values{"locationId": {loc}, "limit": {strconv.Itoa(limit)},
				"startAfter": {strconv.FormatInt(meta.StartAfter, 10)}, "startAfterId": {meta.StartAfterID}}
			meta.NextPageURL = "http://" + r.Host + "/contacts/?" + v.Encode()
		}
	}
	b := make([]byte, 0, 64+len(pageItems)*1200)
	b = append(b, `{"contacts":[`...)
	for i, c := range pageItems {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.getJSON(s)...)
	}
	b = append(b, `],"meta":`...)
	b = append(b, marshal(meta)...)
	b = append(b, '}')
	return jsonReply(http.StatusOK, b)
}
