package transform

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// timeInputs are strings of the shapes the API sends, with digits drawn
// at random (many out of range: month 13, February 30, hour 24), odd
// separators, fractions of 0 to 11 digits, zones, epochs and padding.
func timeInputs(n int) []string {
	r := rand.New(rand.NewPCG(7, 8))
	d := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	pick := func(ss ...string) string { return ss[r.IntN(len(ss))] }
	small := func(max int) string { // two digits, mostly in range
		v := r.IntN(max + 3)
		return string([]byte{byte('0' + v/10), byte('0' + v%10)})
	}
	out := []string{"", " ", "2024-02-29", "2023-02-29", "2024-02-29 23:59:59", "2021-03-14 02:30:00", "2021-11-07 01:30:00.5",
		"0000-01-01", "9999-12-31 23:59:59.999999999", "2024-01-01 24:00:00", "2024-01-01 1:00:00", "2024-1-01", "1700000000000",
		"999999999", "17000000000000000000000", "-1700000000000", "2022-01-07T10:41:49.378Z", "2022-01-07 10:41:49,5", "2022-01-07 10:41:49."}
	for range n {
		date := pick(d(4), "20"+d(2), "19"+d(2)) + "-" + small(12) + "-" + small(31)
		clock := small(23) + ":" + small(59) + ":" + small(59)
		var s string
		switch r.IntN(6) {
		case 0:
			s = date
		case 1, 2:
			s = date + pick(" ", " ", "T", "t", "  ") + clock
		case 3:
			s = date + " " + clock + pick(".", ",") + d(r.IntN(12))
		case 4:
			s = date + pick("T", " ") + clock + pick("", "."+d(1+r.IntN(9))) + pick("Z", "z", "+02:00", "-0500", "")
		case 5:
			s = pick("", "-", "+") + d(8+r.IntN(13))
		}
		out = append(out, pick("", "", "", " ", "\t")+s+pick("", "", "", " ", "x"))
	}
	return out
}

// TestParseTimeFastMatchesLayouts: parseTime (its fast paths for dates,
// zone-less times and epochs) reads every string as the layouts alone do.
func TestParseTimeFastMatchesLayouts(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	fast := 0
	for _, s := range timeInputs(20000) {
		for _, loc := range []*time.Location{time.UTC, ny} {
			got, gnaive, gerr := parseTime(s, loc)
			want, wnaive, werr := parseTimeLayouts(strings.TrimSpace(s), loc)
			if !got.Equal(want) || got.Location() != want.Location() || gnaive != wnaive || (gerr == nil) != (werr == nil) ||
				(gerr != nil && gerr.Error() != werr.Error()) {
				t.Errorf("parseTime(%q, %s) = %v, %v, %v; layouts %v, %v, %v", s, loc, got, gnaive, gerr, want, wnaive, werr)
			}
		}
		if _, ok := parseClock(strings.TrimSpace(s), ' '); ok {
			fast++
		}
	}
	if fast < 3000 {
		t.Errorf("parseClock read only %d strings", fast)
	}
	for _, s := range []string{"2022-01-07T10:41:49.378Z", "2022-01-07T10:41:49Z", "2024-02-29T23:59:59.123456789Z"} {
		want, _ := time.Parse(time.RFC3339Nano, s)
		if got, naive, err := parseTime(s, ny); err != nil || naive || got != want.UTC() {
			t.Errorf("parseTime(%q) = %v, %v, %v; want %v", s, got, naive, err, want)
		}
	}
}
