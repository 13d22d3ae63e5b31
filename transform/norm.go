package transform

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
)

// NormalizeEmail returns an address trimmed, its domain lower-cased and in
// ASCII (an internationalised domain as punycode, through IDNA 2008
// lookup rules), and whether it is a valid address: one @, a local part of
// 1–64 bytes without spaces, control characters or unbalanced quotes, a
// domain of at least two labels that IDNA accepts, at most 254 bytes in
// all. The local part keeps its case (it is case-sensitive by the RFC) and
// may be Unicode (RFC 6531). An invalid address gives "", false.
func NormalizeEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", false
	}
	local, domain := s[:at], strings.TrimSuffix(s[at+1:], ".")
	if len(local) > 64 || !utf8.ValidString(s) {
		return "", false
	}
	quoted := len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"'
	for _, r := range local {
		if unicode.IsControl(r) || (!quoted && (unicode.IsSpace(r) || strings.ContainsRune(`"(),:;<>@[\]`, r))) {
			return "", false
		}
	}
	if !quoted && (local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..")) {
		return "", false
	}
	ascii, ok := plainDomain(domain)
	var err error
	if !ok {
		ascii, err = idnaProfile.ToASCII(strings.ToLower(domain))
	}
	if err != nil || !strings.Contains(ascii, ".") {
		return "", false
	}
	out := s // already local@ascii: no copy
	if s[at+1:] != ascii {
		out = local + "@" + ascii
	}
	if len(out) > 254 {
		return "", false
	}
	return out, true
}

// plainDomain returns d when idnaProfile.ToASCII would return it as it
// is: two or more labels of 1 to 63 lower-case letters, digits and inner
// hyphens (no "--", so no A-label and no hyphens in the 3rd and 4th
// places), at most 253 bytes. False for any other domain, left to IDNA
// (TestPlainDomainMatchesIDNA).
func plainDomain(d string) (string, bool) {
	if len(d) > 253 {
		return "", false
	}
	labels, start := 0, 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > start && d[i-1] != '-') {
				return "", false
			}
			continue
		}
		if n := i - start; n == 0 || n > 63 || d[i-1] == '-' {
			return "", false
		}
		labels++
		start = i + 1
	}
	return d, labels >= 2
}

var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.ValidateLabels(true),
	idna.StrictDomainName(true), idna.VerifyDNSLength(true), idna.Transitional(false))

// NormalizePhone reads a phone number with libphonenumber (the nyaruka
// port), with region (an ISO 3166 alpha-2 code, such as the contact's
// country) as the default region of a number without a leading + or
// international prefix; fallback is used when region is not one
// libphonenumber knows. It returns the number in E.164 and its extension
// ("" when none), or ok false when it does not parse or is not a possible
// number for its country (a number possible only for local dialling, such
// as a US number without its area code, is not). Letters of vanity numbers (1-800-FLOWERS) are
// read as their keypad digits.
func NormalizePhone(s, region, fallback string) (e164, ext string, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", false
	}
	if e164, ok := fastE164(s); ok {
		return e164, "", true
	}
	if e164, ok := fastE164Grouped(s); ok {
		return e164, "", true
	}
	region = strings.ToUpper(strings.TrimSpace(region))
	if len(region) != 2 || phonenumbers.GetCountryCodeForRegion(region) == 0 {
		region = fallback
	}
	n, err := phonenumbers.Parse(s, region)
	if err != nil || phonenumbers.IsPossibleNumberWithReason(n) != phonenumbers.IS_POSSIBLE {
		return "", "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), n.GetExtension(), true
}

// fastE164 reads a number already written as + and 8 to 15 digits
// without going through phonenumbers.Parse (whose regular expressions cost
// most of a contact's mapping): the country calling code is the prefix
// libphonenumber knows (calling codes are prefix-free), the rest the
// national number. It declines (false) anything Parse could read
// differently: a national number that starts with 0, with the country's
// national prefix, or with a match of its national prefix pattern (which
// Parse might strip). The result equals Parse's (TestFastE164MatchesParse).
func fastE164(s string) (string, bool) {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return "", false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	for k := 1; k <= 3; k++ {
		cc, _ := strconv.Atoi(s[1 : 1+k])
		region := phonenumbers.GetRegionCodeForCountryCode(cc)
		if region == "ZZ" {
			continue
		}
		national := s[1+k:]
		md := metadataFor(cc, region)
		npp := md.GetNationalPrefixForParsing()
		if md == nil || national == "" || national[0] == '0' || nationalPrefixAt(cc, npp, national) ||
			(md.GetNationalPrefix() != "" && strings.HasPrefix(national, md.GetNationalPrefix())) {
			return "", false
		}
		if !possibleLength(cc, national) {
			return "", false
		}
		return s, true
	}
	return "", false
}

// fastE164Grouped is fastE164 for a number written as + and groups of
// digits separated by single spaces ("+44 20 7946 0958"): Parse reads it
// as the same digits without the spaces (no extension, no letters, no
// punctuation but the spaces), so the fast path may take the digits alone.
// The result equals Parse's (TestFastE164GroupedMatchesParse).
func fastE164Grouped(s string) (string, bool) {
	if len(s) < 3 || len(s) > 40 || s[0] != '+' || s[1] < '0' || s[1] > '9' {
		return "", false
	}
	var buf [16]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+' && i == 0:
		case c >= '0' && c <= '9':
		case c == ' ' && s[i-1] != ' ' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			continue
		default:
			return "", false
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if n == len(s) {
		return "", false // no spaces: fastE164 declined it already
	}
	e164, ok := fastE164(string(buf[:n]))
	return e164, ok
}

// possibleLen caches possibleLength by calling code and length.
var possibleLen [1000][16]atomic.Int32 // 0 unknown, 1 possible, 2 not

// possibleLength says whether national (digits, no leading 0, at most 15)
// is a possible national significant number for calling code cc:
// IsPossibleNumberWithReason, whose answer depends on cc and the number's
// length alone (testNumberLength), asked once per pair.
func possibleLength(cc int, national string) bool {
	c := &possibleLen[cc][len(national)]
	switch c.Load() {
	case 1:
		return true
	case 2:
		return false
	}
	nn, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return false
	}
	n := &phonenumbers.PhoneNumber{CountryCode: proto32(int32(cc)), NationalNumber: &nn}
	ok := phonenumbers.IsPossibleNumberWithReason(n) == phonenumbers.IS_POSSIBLE
	if ok {
		c.Store(1)
	} else {
		c.Store(2)
	}
	return ok
}

func proto32(v int32) *int32 { return &v }

// nationalPrefixAt says whether national starts with what Parse takes for
// a national prefix (maybeStripNationalPrefixAndCarrierCode strips only
// then): npp, the national prefix for parsing of calling code cc, is a
// literal prefix when all digits, else a pattern matched at the start.
func nationalPrefixAt(cc int, npp, national string) bool {
	if npp == "" {
		return false
	}
	if allDigits(npp) {
		return strings.HasPrefix(national, npp)
	}
	re, ok := nppPatterns.Load(cc)
	if !ok {
		c, err := regexp.Compile("^(?:" + npp + ")")
		if err != nil {
			return true // decline: Parse will say
		}
		re, _ = nppPatterns.LoadOrStore(cc, c)
	}
	return re.(*regexp.Regexp).MatchString(national)
}

// nppPatterns caches the compiled national prefix patterns by calling code.
var nppPatterns sync.Map

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var (
	metaOnce sync.Once
	metaByCC map[int]*phonenumbers.PhoneMetadata
)

// metadataFor is the metadata of region (or of the non-geographic
// calling code cc), read once from the library's collection.
func metadataFor(cc int, region string) *phonenumbers.PhoneMetadata {
	metaOnce.Do(func() {
		metaByCC = map[int]*phonenumbers.PhoneMetadata{}
		all, err := phonenumbers.MetadataCollection()
		if err != nil {
			return
		}
		for _, md := range all.GetMetadata() {
			c := int(md.GetCountryCode())
			if phonenumbers.GetRegionCodeForCountryCode(c) == md.GetId() || (md.GetId() == "001" && metaByCC[c] == nil) {
				metaByCC[c] = md
			}
		}
	})
	return metaByCC[cc]
}

// NormalizeTags trims each tag and drops empty and repeated ones (the
// first occurrence stays, in order). It reuses tags' array.
func NormalizeTags(tags []string) []string {
	out := tags[:0]
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}
