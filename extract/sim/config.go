package sim

import (
	"flag"
	"strings"
	"time"
	_ "time/tzdata" // the locations' zones must load on any machine
)

// Defaults of Config, applied by New to zero fields.
const (
	DefaultClientID      = "sim-client"
	DefaultClientSecret  = "sim-secret"
	DefaultCompanyID     = "comp-0001"
	DefaultAccessTTL     = 24 * time.Hour
	DefaultRateInterval  = 10 * time.Second
	DefaultSlowDelay     = 2 * time.Second
	DefaultBurstLen      = 5
	DefaultMaxFaultsKey  = 3
	unlimitedRateHeader  = 1_000_000
	unlimitedDailyHeader = 200_000
)

// DefaultTimeZones spread the locations over three zones: two with daylight
// saving time on different dates, one without.
var DefaultTimeZones = []string{"America/New_York", "Europe/Berlin", "Asia/Kolkata"}

// defaultEpoch is the end of the generated history when Config.Epoch is
// zero: data is the same from run to run whatever the wall clock says.
var defaultEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Config describes the simulated world and its misbehaviour. The zero value
// is a valid, well-behaved server with no contacts and one location.
type Config struct {
	Seed      int64
	Contacts  int // total, spread round-robin over the locations
	Locations int // default 1
	// Now is the server's clock (default time.Now). Token expiry, rate
	// windows and the dateUpdated of mutations read it.
	Now func() time.Time
	// OnRequest, if set, is called at the start of every API request
	// (not OAuth), before its token is checked, with the endpoint's kind
	// ("search", "tasks", …): tests make things happen at a request count,
	// not at a time.
	OnRequest func(kind string)
	// Epoch is the end of the generated history: every generated timestamp
	// lies in the three years before it. Default 2025-01-01T00:00:00Z, or
	// the day of Now() at New when that is earlier.
	Epoch time.Time

	AccessTTL time.Duration // default 24h; use >= 1s (expires_in is whole seconds)
	// RefreshGrace, when set, lets a used refresh token be replayed within
	// this time of its use as long as the token it was rotated into is
	// unused: the replay retires that successor and issues a new pair (the
	// "grace period" of several OAuth servers). Zero: strictly single use.
	RefreshGrace time.Duration
	ClientID     string // default "sim-client"
	ClientSecret string // default "sim-secret"
	CompanyID    string // default "comp-0001"; owns every location
	// StaticTokens are Private Integration Tokens ("pit-..."): bearer
	// tokens that never expire and never refresh.
	StaticTokens map[string]StaticToken

	RateLimit  RateLimit
	RetryAfter bool // send Retry-After (seconds) on 429
	// TimeZones are the IANA zones of the locations, location i taking
	// TimeZones[i % len]; GET /locations/{id} tells them and zone-less
	// appointment times are in them. Default DefaultTimeZones.
	TimeZones []string
	// ChildContactMismatch is the share of tasks, notes and appointments
	// whose body contactId is not the contact of the request path (another
	// contact's id, or the vendor examples' id), as the vendor's own
	// examples show. The path contact stays the parent (see Truth).
	ChildContactMismatch float64
	// OddIDs gives the first OddIDs generated contacts ids holding what a
	// URL path must escape: '/', '%', ' ', '?', '#', non-ASCII, and a
	// literal "%2F" (OddIDPieces, one in turn, inside the usual id). The
	// server unescapes each path segment once, as a real one does, so a
	// client that escapes an id twice, or not at all, misses the contact.
	// Their children are generated as any contact's.
	OddIDs int
	// LocationIDs, when set, are the ids of the locations (their count is
	// Locations) instead of loc-0001, loc-0002, ...: odd ones check the
	// location's paths the way OddIDs checks the contacts'.
	LocationIDs []string
	// SearchOmitsDND drops dndSettings from search results (seen in the
	// real API); GET /contacts/{id} always has them.
	SearchOmitsDND bool

	Faults Faults
	Bad    BadData
}

// StaticToken is what a Private Integration Token grants.
type StaticToken struct {
	LocationID string
	Scopes     []string
}

// RateLimit is a fixed window per location (the location of the token).
type RateLimit struct {
	Max      int           // requests per Interval; 0 = unlimited (headers say 1000000)
	Interval time.Duration // default 10s
	Daily    int           // requests per UTC day; 0 = unlimited (headers say 200000)
}

// Faults are injected on API endpoints (and on /oauth/token when Token is
// set). Each decision is a hash of Seed, the request (method, path, query,
// body) and how many times that same request was seen, so a run is
// reproducible whatever the interleaving of concurrent requests. A faulted
// request changes nothing: retrying it gives the same answer.
type Faults struct {
	Rate5xx      float64       // 500/502/503 with a JSON or an HTML body
	RateReset    float64       // connection closed with no response (TCP RST)
	RateTruncate float64       // full Content-Length declared, half the body sent
	RateSlow     float64       // sleep SlowDelay before answering
	SlowDelay    time.Duration // default 2s
	Burst429     float64       // probability that a request starts a burst of 429s
	BurstLen     int           // 429s in a burst, this request included; default 5
	// Unexplained429: the 429s of bursts carry the true X-RateLimit-Remaining
	// (seen: 429s while the headers say the window is far from spent);
	// otherwise they say 0.
	Unexplained429 bool
	// MaxPerRequest caps the faults one request key can suffer; the attempt
	// after that is served cleanly. Default 3, so a client allowing 4
	// attempts always gets through (bursts started by others aside).
	MaxPerRequest int
	Token         bool // also inject into POST /oauth/token
}

// BadData injects records that an exporter must reject (or, for HugeNote,
// must carry). All off by default. Which records are spoilt is
// deterministic from Seed; each affected contact carries one problem only.
// ExpectedRejects lists them.
type BadData struct {
	WrongTypes         int  // contact "firstName":123 and "tags":"x", or task "completed":"yes"
	InvalidUTF8        int  // raw invalid bytes in a contact's firstName or a note's body
	HugeNote           bool // one extra note with a 10 MB body (valid data)
	MalformedChildList int  // the /notes or /tasks body of N contacts is not valid JSON
	MissingID          int  // a contact, note or event without "id"
	// OddFields contacts are served with two fields of a wrong shape each
	// (dnd "yes", customFields an object, dateOfBirth a number or the
	// placeholder "Date format YYYY-MM-DD", tags a string, phone a number,
	// email an array, invalid UTF-8 in lastName): they must land with those
	// fields NULL (lastName mended). See ExpectedFieldRejects.
	OddFields int
	// BodyContactIDs contacts have children whose body contactId names
	// another contact, as in the vendor's examples. See BodyContactIDs.
	BodyContactIDs int
	// SearchStuckAtPage K (>= 2): in cursor mode, page K repeats page K-1,
	// so the cursor never advances.
	SearchStuckAtPage int
	// ListRepeatAtPage K (>= 2): the deprecated list's page K returns the
	// request's cursor as its meta.startAfter/startAfterId.
	ListRepeatAtPage int
	// SearchOmitsContacts: every search answer is {"total":N}, without a
	// contacts field.
	SearchOmitsContacts bool
	// SearchOmitsCursor: search results carry no searchAfter; page mode
	// (page * pageLimit <= 10,000) still works.
	SearchOmitsCursor bool
	// MalformedSearchPage K (>= 1): search page K (in either mode, counted
	// from the request's position) is cut mid-record every time it is
	// asked for.
	MalformedSearchPage int
}

// RegisterFlags registers the simulator's flags on fs, writing into c. Call
// it before fs.Parse; the flag defaults are c's current values. The client
// secret has no flag (secrets never come from flags).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Contacts, "contacts", c.Contacts, "number of contacts, spread over the locations")
	fs.IntVar(&c.Locations, "locations", max(c.Locations, 1), "number of locations")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the generated data and of fault injection")
	fs.DurationVar(&c.AccessTTL, "access-ttl", orDur(c.AccessTTL, DefaultAccessTTL), "lifetime of access tokens")
	fs.StringVar(&c.ClientID, "client-id", orStr(c.ClientID, DefaultClientID), "OAuth client id")
	fs.IntVar(&c.RateLimit.Max, "rate-max", c.RateLimit.Max, "requests per interval per location (0 = unlimited)")
	fs.DurationVar(&c.RateLimit.Interval, "rate-interval", orDur(c.RateLimit.Interval, DefaultRateInterval), "rate limit interval")
	fs.IntVar(&c.RateLimit.Daily, "rate-daily", c.RateLimit.Daily, "requests per day per location (0 = unlimited)")
	fs.BoolVar(&c.RetryAfter, "retry-after", c.RetryAfter, "send Retry-After on 429")
	fs.Float64Var(&c.ChildContactMismatch, "child-contact-mismatch", c.ChildContactMismatch, "share of children whose body contactId is another contact's")
	fs.Func("time-zones", "comma-separated IANA zones of the locations, in turn (default "+strings.Join(DefaultTimeZones, ",")+")", func(v string) error {
		zs := strings.Split(v, ",")
		for _, z := range zs {
			if _, err := time.LoadLocation(z); err != nil {
				return err
			}
		}
		c.TimeZones = zs
		return nil
	})
	fs.IntVar(&c.OddIDs, "odd-ids", c.OddIDs, "contacts whose ids hold characters a URL path must escape")
	fs.BoolVar(&c.SearchOmitsDND, "search-omits-dnd", c.SearchOmitsDND, "omit dndSettings from search results")
	fs.Float64Var(&c.Faults.Rate5xx, "fault-5xx", c.Faults.Rate5xx, "probability of a 5xx answer")
	fs.Float64Var(&c.Faults.RateReset, "fault-reset", c.Faults.RateReset, "probability of a connection reset")
	fs.Float64Var(&c.Faults.RateTruncate, "fault-truncate", c.Faults.RateTruncate, "probability of a truncated body")
	fs.Float64Var(&c.Faults.RateSlow, "fault-slow", c.Faults.RateSlow, "probability of a slow answer")
	fs.DurationVar(&c.Faults.SlowDelay, "fault-slow-delay", orDur(c.Faults.SlowDelay, DefaultSlowDelay), "delay of a slow answer")
	fs.Float64Var(&c.Faults.Burst429, "fault-429", c.Faults.Burst429, "probability that a request starts a burst of 429s")
	fs.IntVar(&c.Faults.BurstLen, "fault-429-len", orInt(c.Faults.BurstLen, DefaultBurstLen), "429s per burst")
	fs.BoolVar(&c.Faults.Unexplained429, "fault-429-unexplained", c.Faults.Unexplained429, "429 bursts keep the true X-RateLimit-Remaining")
	fs.IntVar(&c.Faults.MaxPerRequest, "fault-max-per-request", orInt(c.Faults.MaxPerRequest, DefaultMaxFaultsKey), "faults one request can suffer before it is served")
	fs.BoolVar(&c.Faults.Token, "fault-token", c.Faults.Token, "inject faults into POST /oauth/token too")
	fs.IntVar(&c.Bad.WrongTypes, "bad-wrong-types", c.Bad.WrongTypes, "records with wrongly typed fields")
	fs.IntVar(&c.Bad.InvalidUTF8, "bad-utf8", c.Bad.InvalidUTF8, "records with invalid UTF-8")
	fs.BoolVar(&c.Bad.HugeNote, "bad-huge-note", c.Bad.HugeNote, "add one 10 MB note")
	fs.IntVar(&c.Bad.MalformedChildList, "bad-malformed-children", c.Bad.MalformedChildList, "child lists that are not valid JSON")
	fs.IntVar(&c.Bad.MissingID, "bad-missing-id", c.Bad.MissingID, "records without id")
	fs.IntVar(&c.Bad.OddFields, "bad-odd-fields", c.Bad.OddFields, "contacts with wrongly shaped fields that must still land")
	fs.IntVar(&c.Bad.BodyContactIDs, "bad-body-contact-ids", c.Bad.BodyContactIDs, "contacts whose children name another contactId")
	fs.IntVar(&c.Bad.SearchStuckAtPage, "bad-search-stuck-page", c.Bad.SearchStuckAtPage, "search cursor stops advancing at this page (0 = never)")
	fs.BoolVar(&c.Bad.SearchOmitsContacts, "bad-search-no-contacts", c.Bad.SearchOmitsContacts, "search answers have no contacts field")
	fs.BoolVar(&c.Bad.SearchOmitsCursor, "bad-search-no-cursor", c.Bad.SearchOmitsCursor, "search results have no searchAfter")
	fs.IntVar(&c.Bad.MalformedSearchPage, "bad-search-malformed-page", c.Bad.MalformedSearchPage, "search page that is cut mid-record (0 = never)")
	fs.IntVar(&c.Bad.ListRepeatAtPage, "bad-list-repeat-page", c.Bad.ListRepeatAtPage, "deprecated list repeats its cursor at this page (0 = never)")
}

func (c *Config) applyDefaults() {
	if len(c.LocationIDs) > 0 {
		c.Locations = len(c.LocationIDs)
	}
	if c.Locations <= 0 {
		c.Locations = 1
	}
	if c.Contacts < 0 {
		c.Contacts = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Epoch.IsZero() {
		c.Epoch = defaultEpoch
		if now := c.Now(); now.Before(c.Epoch) {
			c.Epoch = now.UTC().Truncate(24 * time.Hour)
		}
	}
	if len(c.TimeZones) == 0 {
		c.TimeZones = DefaultTimeZones
	}
	c.AccessTTL = orDur(c.AccessTTL, DefaultAccessTTL)
	c.ClientID = orStr(c.ClientID, DefaultClientID)
	c.ClientSecret = orStr(c.ClientSecret, DefaultClientSecret)
	c.CompanyID = orStr(c.CompanyID, DefaultCompanyID)
	c.RateLimit.Interval = orDur(c.RateLimit.Interval, DefaultRateInterval)
	c.Faults.SlowDelay = orDur(c.Faults.SlowDelay, DefaultSlowDelay)
	c.Faults.BurstLen = orInt(c.Faults.BurstLen, DefaultBurstLen)
	c.Faults.MaxPerRequest = orInt(c.Faults.MaxPerRequest, DefaultMaxFaultsKey)
}

func orDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

func orStr(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}
