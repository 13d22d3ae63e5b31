package load

import (
	"context"
	"fmt"
)

// liveContacts reads EachLiveContact of one location into a map, and
// fails when the stream is not in strictly ascending byte order of id.
func liveContacts(ctx context.Context, s Store, source, location string) (map[string]int64, error) {
	out := map[string]int64{}
	prev, first := "", true
	err := s.EachLiveContact(ctx, source, location, func(id string, ms int64) error {
		if !first && id <= prev {
			return fmt.Errorf("live contacts of %s out of order: %q after %q", location, id, prev)
		}
		prev, first = id, false
		out[id] = ms
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
