package auth

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/oauth2"
)

// Unusable is a location whose stored credentials cannot give a token, and
// the command that fixes them.
type Unusable struct {
	Location string
	Err      error  // matches ErrCredentials, or a store error
	Fix      string // e.g. "run `contacts-etl auth login --auth oauth --locations loc-1`"
}

// Usable says, without a network request, whether the source can give a
// token: a stored access token still valid, or a refresh token not known to
// be refused (for an agency location: its own valid token, or a usable
// company token). A refresh token whose last refresh was interrupted counts
// as usable: the refresh, or the Reconnect API, decides. It returns nil or
// an error matching ErrCredentials (or the store's error).
func (s *Source) Usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usable(s.cur) {
		return nil
	}
	t, err := s.store.Get(s.key)
	if err == nil && s.usable(t) {
		return nil
	}
	if s.company != nil {
		if err != nil && !errors.Is(err, ErrNoToken) {
			return err
		}
		if err := s.company.Usable(); err != nil {
			return fmt.Errorf("agency token: %w", err)
		}
		return nil
	}
	if errors.Is(err, ErrNoToken) {
		return &RefreshError{Key: s.key, Err: err, Fix: s.loginFix(), stop: true}
	}
	if err != nil {
		return err
	}
	if e := s.knownRefused(t); e != nil {
		return e
	}
	if t.RefreshToken == "" {
		return &RefreshError{Key: s.key, Code: "invalid_grant", Description: "no refresh token stored", Fix: s.reconnectFix(), stop: true}
	}
	return nil
}

// CheckUsable runs Usable on every source that has it (static tokens
// cannot be checked offline and count as usable) and returns the locations
// that are not usable, sorted, each with its fix. A run calls it before its
// first commit, skips those locations and ends partial.
func CheckUsable(sources map[string]oauth2.TokenSource) []Unusable {
	var out []Unusable
	for loc, src := range sources {
		u, ok := src.(interface{ Usable() error })
		if !ok {
			continue
		}
		if err := u.Usable(); err != nil {
			out = append(out, Unusable{Location: loc, Err: err, Fix: fixOf(err)})
		}
	}
	slices.SortFunc(out, func(a, b Unusable) int {
		if a.Location < b.Location {
			return -1
		}
		if a.Location > b.Location {
			return 1
		}
		return 0
	})
	return out
}

// FixOf returns the fix an error of this package suggests, or "".
func FixOf(err error) string { return fixOf(err) }

func fixOf(err error) string {
	var re *RefreshError
	if errors.As(err, &re) {
		return re.Fix
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Fix
	}
	return ""
}
