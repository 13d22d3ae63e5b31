package transform

import (
	"strings"
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
	ascii, err := idnaProfile.ToASCII(strings.ToLower(domain))
	if err != nil || !strings.Contains(ascii, ".") {
		return "", false
	}
	out := local + "@" + ascii
	if len(out) > 254 {
		return "", false
	}
	return out, true
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
