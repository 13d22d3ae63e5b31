package load

import (
	"context"
	"fmt"
)

// liveContacts reads EachLiveContact of one location into a map, and
// fails when it yields an id twice.
func liveContacts(ctx context.Context, s Store, source, location string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.EachLiveContact(ctx, source, location, func(id string, ms int64) error {
		if _, ok := out[id]; ok {
			return fmt.Errorf("live contacts of %s: %q twice", location, id)
		}
		out[id] = ms
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
