package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // zone names from the API must load on any machine

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// ErrNoLocationScope is returned by LocationTimeZone when the token lacks
// the optional scope locations.readonly. The run then takes the location's
// zone from its configuration, or else UTC with a warning.
var ErrNoLocationScope = errors.New("the token lacks scope " + api.ScopeLocationsRO)

// ErrNoTimeZone is returned by LocationTimeZone when the location names no
// time zone, or one this program does not know.
var ErrNoTimeZone = errors.New("location has no usable time zone")

// LocationTimeZone asks GET /locations/{locationId} for the location's IANA
// time zone, the zone of the zone-less appointment times of its contacts.
// It fails with ErrNoLocationScope (the HTTP error wrapped too) when the
// token may not read locations, and with ErrNoTimeZone when the answer has
// no zone that time.LoadLocation accepts. One request, plus retries.
func (c *Client) LocationTimeZone(ctx context.Context) (name string, err error) {
	b, err := c.do(ctx, http.MethodGet, "/locations/"+pathEscape(c.location), nil, nil)
	if err != nil {
		var he *api.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized && strings.EqualFold(strings.TrimSpace(he.Message), auth.MsgScope) {
			return "", fmt.Errorf("location %s time zone: %w: %w", c.location, ErrNoLocationScope, err)
		}
		return "", fmt.Errorf("location %s time zone: %w", c.location, err)
	}
	var r api.LocationResponse
	if err := json.Unmarshal(b, &r); err != nil || r.Location == nil {
		return "", fmt.Errorf("location %s time zone: malformed answer: %w", c.location, ErrNoTimeZone)
	}
	name = strings.TrimSpace(r.Location.Timezone)
	if name == "" {
		return "", fmt.Errorf("location %s time zone: %w", c.location, ErrNoTimeZone)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return "", fmt.Errorf("location %s time zone %q: %w", c.location, name, ErrNoTimeZone)
	}
	return name, nil
}
