package transform

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// zoned layouts carry their own offset; naive ones are read in the
// configured zone (the API has been seen sending "2021-07-16 11:00:00").
var (
	zoned = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999Z07:00"}
	naive = []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}
)

// ParseTime reads the API's timestamps: ISO 8601 with Z or an offset, the
// zone-less form (in zone loc), a date, or epoch milliseconds. "" is the zero
// time. The result is UTC.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range zoned {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	for _, l := range naive {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && len(s) >= 10 {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", clip(s, 40))
}

// parseDay reads a date of birth: a date or a timestamp (its UTC date).
func parseDay(s string) (day, error) {
	t, err := ParseTime(s, time.UTC)
	if err != nil || t.IsZero() {
		return day{}, err
	}
	return day{t: t, ok: true}, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
