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
	if w, ok := parseClock(s, ' '); ok {
		return InZone(w, loc), true, nil
	}
	if n := len(s); n > 19 && s[n-1] == 'Z' && s[10] == 'T' {
		if t, ok := parseClock(s[:n-1], 'T'); ok {
			return t, false, nil
		}
	}
	if len(s) >= 10 && allDigits(s) {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.UnixMilli(ms).UTC(), false, nil
		}
	}
	return parseTimeLayouts(s, loc)
}

// parseClock reads, without time.Parse (whose failures on the layouts
// tried before the right one allocate errors), a date "2006-01-02" or a
// time "2006-01-02 15:04:05" (sep between date and clock), maybe with 1 to
// 9 digits of fraction after a '.', in UTC: as the naive layouts read a
// zone-less time (sep ' '), or RFC 3339 one ending in Z without its Z (sep
// 'T'); false for anything else (an invalid date among them), which the
// layouts will read. TestParseTimeFastMatchesLayouts.
func parseClock(s string, sep byte) (time.Time, bool) {
	if len(s) != 10 && len(s) != 19 && (len(s) < 21 || len(s) > 29 || s[19] != '.') {
		return time.Time{}, false
	}
	if s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	var hour, min, sec, nsec int
	if len(s) > 10 {
		if s[10] != sep || s[13] != ':' || s[16] != ':' {
			return time.Time{}, false
		}
		var ok4, ok5, ok6 bool
		hour, ok4 = num(s[11:13])
		min, ok5 = num(s[14:16])
		sec, ok6 = num(s[17:19])
		if !ok4 || !ok5 || !ok6 || hour > 23 || min > 59 || sec > 59 {
			return time.Time{}, false
		}
		if len(s) > 19 {
			frac := s[20:]
			n, ok := num(frac)
			if !ok {
				return time.Time{}, false
			}
			for range 9 - len(frac) {
				n *= 10
			}
			nsec = n
		}
	}
	return time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC), true
}

// num reads s, all decimal digits.
func num(s string) (int, bool) {
	n := 0
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseTimeLayouts is parseTime by the layouts alone, s trimmed.
func parseTimeLayouts(s string, loc *time.Location) (time.Time, bool, error) {
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
