package transform

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
)

func TestNormalizeEmail(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"  Jane.Doe@Example.COM ", "Jane.Doe@example.com", true},
		{"user+tag@sub.example.co.uk", "user+tag@sub.example.co.uk", true},
		{"josé@bücher.de", "josé@xn--bcher-kva.de", true},   // Unicode local part (RFC 6531), IDN domain
		{"info@MÜNCHEN.de", "info@xn--mnchen-3ya.de", true}, // IDN upper-case folds
		{"用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", true},
		{"a@b.c.", "a@b.c", true}, // trailing root dot
		{`"john doe"@example.com`, `"john doe"@example.com`, true},
		{"", "", false},
		{"no-at-sign", "", false},
		{"@example.com", "", false},
		{"a@", "", false},
		{"a@localhost", "", false},
		{"two words@example.com", "", false},
		{"a..b@example.com", "", false},
		{".a@example.com", "", false},
		{"a@exa mple.com", "", false},
		{"a@-bad-.com", "", false},
		{"a@" + string(make([]byte, 300)), "", false},
		{"mailto:a@b.com", "", false},
		{"a@b@c.com", "", false},
		{"\xff@example.com", "", false},
	} {
		got, ok := NormalizeEmail(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, c := range []struct {
		in, region, e164, ext string
		ok                    bool
	}{
		{"+1 (415) 555-2671", "", "+14155552671", "", true},
		{"(415) 555-2671", "US", "+14155552671", "", true},
		{"415.555.2671", "", "+14155552671", "", true}, // no country: default region US
		{"020 7946 0958", "GB", "+442079460958", "", true},
		{"+44 20 7946 0958", "US", "+442079460958", "", true}, // an explicit country code wins over the region
		{"030 123456", "DE", "+4930123456", "", true},
		{"06 12 34 56 78", "fr", "+33612345678", "", true}, // region case-insensitive
		{"+81 3-1234-5678", "JP", "+81312345678", "", true},
		{"1-800-FLOWERS", "US", "+18003569377", "", true}, // vanity letters as keypad digits
		{"+1 415 555 2671 ext. 123", "", "+14155552671", "123", true},
		{"(415) 555-2671 x42", "US", "+14155552671", "42", true},
		{"+1-415-555-2671;ext=7", "", "+14155552671", "7", true},
		{"0043 1 234567", "AT", "+431234567", "", true}, // international prefix of the region
		{"555-1234", "ZZ", "", "", false},               // unknown region falls back to US: local only, no area code
		{"12", "US", "", "", false},
		{"not a phone", "US", "", "", false},
		{"", "US", "", "", false},
		{"+999 1234 5678", "", "", "", false}, // no such country code
	} {
		e164, ext, ok := NormalizePhone(c.in, c.region, "US")
		if e164 != c.e164 || ext != c.ext || ok != c.ok {
			t.Errorf("NormalizePhone(%q, %q) = %q, %q, %v; want %q, %q, %v", c.in, c.region, e164, ext, ok, c.e164, c.ext, c.ok)
		}
	}
}

func TestNormalizeTags(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"vip", " vip ", "lead", "VIP", "", "  ", "lead", "重要", "重要 "}, []string{"vip", "lead", "VIP", "重要"}},
		{[]string{}, []string{}},
		{[]string{" "}, []string{}},
	} {
		if got := NormalizeTags(slices.Clone(c.in)); !slices.Equal(got, c.want) {
			t.Errorf("NormalizeTags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestOddTimes: leap days and DST gaps in dates and zone-less times.
func TestOddTimes(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		loc  *time.Location
		want time.Time
		bad  bool
	}{
		{"2024-02-29", time.UTC, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), false},
		{"2023-02-29", time.UTC, time.Time{}, true}, // not a leap year
		{"2024-02-29T23:30:00-05:00", time.UTC, time.Date(2024, 3, 1, 4, 30, 0, 0, time.UTC), false},
		{"2021-03-14 02:30:00", ny, time.Date(2021, 3, 14, 7, 30, 0, 0, time.UTC), false}, // in the spring-forward gap
		{"2021-11-07 01:30:00", ny, time.Date(2021, 11, 7, 5, 30, 0, 0, time.UTC), false}, // in the fall-back overlap: the earlier
		{"1900-01-01", time.UTC, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		got, err := ParseTime(c.in, c.loc)
		if (err != nil) != c.bad || !got.Equal(c.want) {
			t.Errorf("ParseTime(%q, %s) = %v, %v; want %v (error %v)", c.in, c.loc, got, err, c.want, c.bad)
		}
	}
}

// TestFastE164MatchesParse: the fast path for +digits numbers gives what
// phonenumbers.Parse gives, or declines, for random numbers of every
// calling code.
func TestFastE164MatchesParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for cc := 1; cc < 1000; cc++ {
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			continue
		}
		for range 40 {
			n := 6 + r.IntN(9)
			d := make([]byte, n)
			for i := range d {
				d[i] = byte('0' + r.IntN(10))
			}
			s := "+" + strconv.Itoa(cc) + string(d)
			got, ok := fastE164(s)
			if !ok {
				continue
			}
			fast++
			e164, _, pok := NormalizePhoneSlow(s, "US")
			if !pok || e164 != got {
				t.Errorf("%s: fast %q, Parse %q %v", s, got, e164, pok)
			}
		}
	}
	if fast < 500 {
		t.Errorf("fast path took only %d numbers", fast)
	}
}

// NormalizePhoneSlow is NormalizePhone through phonenumbers.Parse only.
func NormalizePhoneSlow(s, region string) (string, string, bool) {
	n, err := phonenumbers.Parse(s, region)
	if err != nil || phonenumbers.IsPossibleNumberWithReason(n) != phonenumbers.IS_POSSIBLE {
		return "", "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), n.GetExtension(), true
}

func TestFastE164Common(t *testing.T) {
	for _, s := range []string{"+14155552671", "+15555220526", "+4930123456"} {
		if got, ok := fastE164(s); !ok || got != s {
			t.Errorf("fastE164(%q) = %q, %v", s, got, ok)
		}
	}
}

// TestFastE164GroupedMatchesParse: the fast path for + and digit groups
// separated by single spaces gives what phonenumbers.Parse gives, or
// declines, for random numbers of every calling code split at random.
func TestFastE164GroupedMatchesParse(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fast := 0
	for cc := 1; cc < 1000; cc++ {
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			continue
		}
		for range 40 {
			digits := strconv.Itoa(cc)
			for range 6 + r.IntN(9) {
				digits += string(rune('0' + r.IntN(10)))
			}
			s := "+"
			for i := range len(digits) {
				if i > 0 && r.IntN(3) == 0 {
					s += " "
				}
				s += digits[i : i+1]
			}
			got, ok := fastE164Grouped(s)
			if !ok {
				continue
			}
			if strings.Contains(s, " ") {
				fast++
			}
			e164, ext, pok := NormalizePhoneSlow(s, "US")
			if !pok || e164 != got || ext != "" {
				t.Errorf("%q: fast %q, Parse %q %q %v", s, got, e164, ext, pok)
			}
		}
	}
	if fast < 500 {
		t.Errorf("fast path took only %d grouped numbers", fast)
	}
	for _, s := range []string{"+44 20 7946 0958", "+1 415 555 2671", "+49 30 123456"} {
		want, _, _ := NormalizePhoneSlow(s, "US")
		if got, ok := fastE164Grouped(s); !ok || got != want {
			t.Errorf("fastE164Grouped(%q) = %q, %v; want %q", s, got, ok, want)
		}
	}
	// declined: not single spaces between digits, or no space at all
	for _, s := range []string{"+44  20 7946 0958", "+ 44 20 7946 0958", "+44 20 7946 0958 ", "+44-20-7946-0958",
		"+442079460958", "+44 20 7946 0958 x1", "+44 (20) 7946 0958", "+44 20 7946 095a", "+1 415 555 2671 2671 2671"} {
		if got, ok := fastE164Grouped(s); ok {
			t.Errorf("fastE164Grouped(%q) = %q, want declined", s, got)
		}
	}
}

// TestPossibleLengthMatchesLibrary: the cached answer of possibleLength
// is IsPossibleNumberWithReason's for every number of each calling code
// and length, whichever number of that length asked first.
func TestPossibleLengthMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	possible := 0
	for cc := 1; cc < 1000; cc++ {
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			continue
		}
		for n := 1; n <= 14; n++ {
			for range 3 {
				d := []byte{byte('1' + r.IntN(9))}
				for len(d) < n {
					d = append(d, byte('0'+r.IntN(10)))
				}
				nn, _ := strconv.ParseUint(string(d), 10, 64)
				cc32 := int32(cc)
				want := phonenumbers.IsPossibleNumberWithReason(&phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &nn}) == phonenumbers.IS_POSSIBLE
				if got := possibleLength(cc, string(d)); got != want {
					t.Errorf("possibleLength(%d, %s) = %v, want %v", cc, d, got, want)
				}
				if want {
					possible++
				}
			}
		}
	}
	if possible < 1000 {
		t.Errorf("only %d possible numbers", possible)
	}
}

// TestPlainDomainMatchesIDNA: a domain plainDomain takes is one IDNA's
// lookup profile returns unchanged, without error; over random domains of
// letters, digits, hyphens, dots and a few other characters.
func TestPlainDomainMatchesIDNA(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	domains := []string{"example.com", "a.b", "x--y.com", "xn--bcher-kva.de", "ab--c.de", "-a.com", "a-.com", "a..com", ".a.com", "a.com.",
		"com", "a.b.c.d.e", strings.Repeat("a", 63) + ".com", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 126) + "co", strings.Repeat("a.", 127) + "co"}
	for range 50000 {
		var b []byte
		for l := range 1 + r.IntN(4) {
			if l > 0 {
				b = append(b, '.')
			}
			n := 1 + r.IntN(8)
			if r.IntN(10) == 0 {
				n = 60 + r.IntN(6)
			}
			for range n {
				if r.IntN(12) == 0 {
					b = append(b, "-.AZ_é\x00"[r.IntN(8)])
				} else {
					b = append(b, "abcxyz0189"[r.IntN(10)])
				}
			}
		}
		domains = append(domains, string(b))
	}
	taken := 0
	for _, d := range domains {
		got, ok := plainDomain(d)
		if !ok {
			continue
		}
		taken++
		want, err := idnaProfile.ToASCII(d)
		if err != nil || got != want || !strings.Contains(want, ".") {
			t.Errorf("plainDomain(%q) = %q; ToASCII %q, %v", d, got, want, err)
		}
	}
	if taken < 2000 {
		t.Errorf("plainDomain took only %d domains", taken)
	}
}
