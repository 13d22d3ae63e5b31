package extract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrQuotaReserve is returned (wrapped in a *QuotaError) when a request would
// spend the part of a location's daily quota kept in reserve. A run that
// meets it stops that location cleanly: what was fetched is committed and
// the next run (after the quota resets) carries on.
var ErrQuotaReserve = errors.New("daily quota down to the reserve")

// QuotaError says how much of the day's quota was left.
type QuotaError struct {
	Remaining int64 // X-RateLimit-Daily-Remaining as last seen
	Reserve   int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v: %d requests left today, %d kept in reserve", ErrQuotaReserve, e.Remaining, e.Reserve)
}

func (e *QuotaError) Unwrap() error { return ErrQuotaReserve }

// Reserve is the part of a daily quota a run leaves unspent: a number of
// requests, or a percentage of the daily limit. The zero value keeps nothing.
type Reserve struct {
	Requests int64
	Percent  float64
}

// DefaultReserve leaves a tenth of the day's quota to the user's other apps.
var DefaultReserve = Reserve{Percent: 10}

// ParseReserve reads "5000" (requests) or "10%" (of the daily limit).
func ParseReserve(s string) (Reserve, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f > 100 {
			return Reserve{}, fmt.Errorf("daily reserve %q: want a percentage in 0..100%%", s)
		}
		return Reserve{Percent: f}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return Reserve{}, fmt.Errorf("daily reserve %q: want a number of requests or a percentage", s)
	}
	return Reserve{Requests: n}, nil
}

// Of is the reserve in requests for a daily limit.
func (r Reserve) Of(dailyLimit int64) int64 {
	if r.Percent > 0 {
		return int64(float64(dailyLimit) * r.Percent / 100)
	}
	return r.Requests
}

func (r Reserve) String() string {
	if r.Percent > 0 {
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(r.Requests, 10)
}

// Set implements flag.Value.
func (r *Reserve) Set(s string) error {
	v, err := ParseReserve(s)
	if err == nil {
		*r = v
	}
	return err
}

// UnmarshalText lets a config file say "10%" or 5000.
func (r *Reserve) UnmarshalText(b []byte) error { return r.Set(string(b)) }

// MarshalText is the inverse of UnmarshalText.
func (r Reserve) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// RetryBudget caps the retries of a whole run, shared by all its clients.
// A nil *RetryBudget allows any number.
type RetryBudget struct{ left atomic.Int64 }

// DefaultRetryBudget is the per-run retry cap.
const DefaultRetryBudget = 10_000

// NewRetryBudget allows n retries in all; n <= 0 means no limit (nil).
func NewRetryBudget(n int64) *RetryBudget {
	if n <= 0 {
		return nil
	}
	b := new(RetryBudget)
	b.left.Store(n)
	return b
}

// Take spends one retry; false when none is left.
func (b *RetryBudget) Take() bool { return b == nil || b.left.Add(-1) >= 0 }

// Left is the number of retries left (-1 for no limit).
func (b *RetryBudget) Left() int64 {
	if b == nil {
		return -1
	}
	return max(b.left.Load(), 0)
}
