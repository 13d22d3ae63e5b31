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
// zone-less form (a wall time in zone loc, resolved by InZone), a date, or
// epoch milliseconds. "" is the zero time. The result is UTC.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	t, _, err := parseTime(s, loc)
	return t, err
}

// parseTime is ParseTime that also says whether s was a zone-less wall time.
func parseTime(s string, loc *time.Location) (time.Time, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false, nil
	}
	for _, l := range zoned {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), false, nil
		}
	}
	for _, l := range naive {
		if w, err := time.Parse(l, s); err == nil {
			return InZone(w, loc), true, nil
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && len(s) >= 10 {
		return time.UnixMilli(ms).UTC(), false, nil
	}
	return time.Time{}, false, fmt.Errorf("unrecognised time %q", clip(s, 40))
}

// InZone returns, in UTC, the instant at which the clocks of loc show the
// wall time w (w's own zone is ignored: its fields are the wall time). The
// rule at a change of offset is fixed, whatever time.Date does:
//   - in a gap (spring forward: 02:30 does not happen), the offset in force
//     before the gap is used, so the result is the wall time shifted forward
//     by the gap (02:30 in New York on 2021-03-14 is 07:30Z, 03:30 EDT);
//   - in an overlap (fall back: 01:30 happens twice), the earlier instant,
//     read with the offset before the change (01:30 in New York on
//     2021-11-07 is 05:30Z, 01:30 EDT).
func InZone(w time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	wall := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC)
	_, before := wall.Add(-36 * time.Hour).In(loc).Zone()
	_, after := wall.Add(36 * time.Hour).In(loc).Zone()
	for _, off := range []int{before, after} {
		t := wall.Add(-time.Duration(off) * time.Second)
		if l := t.In(loc); sameWall(l, wall) {
			return t
		}
	}
	return wall.Add(-time.Duration(before) * time.Second)
}

func sameWall(a, w time.Time) bool {
	y, m, d := a.Date()
	wy, wm, wd := w.Date()
	return y == wy && m == wm && d == wd && a.Hour() == w.Hour() && a.Minute() == w.Minute() &&
		a.Second() == w.Second() && a.Nanosecond() == w.Nanosecond()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
