package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// ErrNoCustomFieldsScope is returned by CustomFields when the token lacks
// the optional scope locations/customFields.readonly (or may not read the
// location's fields). The run goes on: custom field values still land,
// keyed by field id, without names or types.
var ErrNoCustomFieldsScope = errors.New("the token lacks scope " + api.ScopeCustomFieldsRO)

// CustomFields asks GET /locations/{locationId}/customFields?model=contact
// for the location's custom field definitions, one raw JSON object each.
// One request, plus retries.
func (c *Client) CustomFields(ctx context.Context) ([]json.RawMessage, error) {
	b, err := c.do(ctx, http.MethodGet, "/locations/"+pathEscape(c.location)+"/customFields", url.Values{"model": {"contact"}}, nil)
	if err != nil {
		var he *api.HTTPError
		if errors.As(err, &he) && (he.Status == http.StatusForbidden ||
			(he.Status == http.StatusUnauthorized && strings.EqualFold(strings.TrimSpace(he.Message), auth.MsgScope))) {
			return nil, fmt.Errorf("location %s custom fields: %w: %w", c.location, ErrNoCustomFieldsScope, err)
		}
		return nil, fmt.Errorf("location %s custom fields: %w", c.location, err)
	}
	var r api.CustomFieldsResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("location %s custom fields: malformed answer: %w", c.location, err)
	}
	return r.CustomFields, nil
}
