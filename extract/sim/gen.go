package sim

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Salts keep the hash streams of different purposes apart.
const (
	saltContact uint64 = iota + 1
	saltContactID
	saltKids
	saltTask
	saltNote
	saltEvent
	saltAdded
	saltBad
	saltFault
	saltTrace
	saltMutate
)

const isoMs = "2006-01-02T15:04:05.000Z"

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(isoMs) }

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func hash(parts ...uint64) uint64 {
	h := uint64(0x243F6A8885A308D3)
	for _, p := range parts {
		h = splitmix(h ^ p)
	}
	return h
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// makeID renders a 20-character id like the real API's.
func makeID(parts ...uint64) string {
	h1 := hash(parts...)
	h2 := splitmix(h1 ^ 0x5851F42D4C957F2D)
	var b [20]byte
	for i := 0; i < 10; i++ {
		b[i] = base62[h1%62]
		h1 /= 62
		b[10+i] = base62[h2%62]
		h2 /= 62
	}
	return string(b[:])
}

// OddIDPieces are what Config.OddIDs puts in contact ids, one in turn.
var OddIDPieces = []string{"a/b", "50%", "x y", "q?r", "h#1", "é✓", "%2F", "/?# %é+"}

// oddID is generated id number i with OddIDPieces[i % len] inside.
func oddID(id string, i int) string {
	return id[:10] + OddIDPieces[i%len(OddIDPieces)] + id[10:]
}

func newRand(seed int64, parts ...uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), hash(parts...)))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

var (
	firstNames = []string{"Ana", "John", "José", "Zoë", "Łukasz", "Søren", "François", "Nguyễn Văn", "李", "王芳",
		"さくら", "محمد", "שרה", "Ólafur", "Émilie", "Björk", "Dmitrĳ", "Ирина", "Αλέξανδρος", "Ngozi",
		"Mary-Jane", "O'Neil", "Robert \"Bob\"", "Chloé 🌸", "Siobhán", "Jürgen", "Ayşe", "Priya", "Kwame", "Åsa"}
	lastNames = []string{"Smith", "García", "Müller", "Dubois", "O'Brien", "Kowalski", "Nakamura", "张伟", "Ivanov",
		"Ben-David", "Al-Hassan", "Nørgaard", "de la Cruz", "van der Berg", "Søndergaard", "Ñúñez", "Lê", "Петров",
		"Παπαδόπουλος", "Okafor", "Patel", "Smith 😀", "Łęcki", "Åberg", "Yılmaz"}
	companies = []string{"Acme Inc.", "Globex", "Initech", "Umbrella Corp", "Café Olé S.A.", "株式会社テスト",
		"Müller & Söhne GmbH", "Soylent \"Green\" Ltd", "Wayne Enterprises", "شركة النور"}
	tagPool    = []string{"lead", "customer", "vip", "newsletter", "webinar-2024", "cold", "hot", "referral", "partner", "churned", "ñandú", "重要"}
	sources    = []string{"website", "facebook", "google ads", "referral", "import", "manual", "api"}
	users      = []string{"usr0Aa1Bb2Cc3Dd4Ee5F", "usr1Gg6Hh7Ii8Jj9Kk0L", "usr2Mm1Nn2Oo3Pp4Qq5R", "usr3Ss6Tt7Uu8Vv9Ww0X", "usr4Yy1Zz2Aa3Bb4Cc5D"}
	cities     = []string{"Austin", "Zürich", "São Paulo", "Kraków", "Tōkyō", "Montréal", "Reykjavík", "Cairo", "Lagos", "Berlin"}
	countries  = []string{"US", "CH", "BR", "PL", "JP", "CA", "IS", "EG", "NG", "DE"}
	timezones  = []string{"America/Chicago", "Europe/Zurich", "America/Sao_Paulo", "Europe/Warsaw", "Asia/Tokyo", "America/Toronto", "Atlantic/Reykjavik", "Africa/Cairo"}
	dndChans   = []string{"Call", "Email", "SMS", "WhatsApp", "GMB", "FB"}
	taskTitles = []string{"Call back", "Send proposal", "Follow up on invoice", "Prüfen: Vertrag", "Schedule demo", "Réunion de suivi", "确认订单", "Check in 👋"}
	noteBodies = []string{
		"Spoke on the phone, interested in the premium plan.",
		"Left voicemail.\nWill try again tomorrow.",
		"Client said: \"call me after 5pm\" — noted.",
		"Rendez-vous confirmé pour jeudi à 14h.",
		"顾客希望下周联系。",
		"שלום, הלקוח ביקש הצעת מחיר",
		"Tab\tseparated\tnotes and a backslash \\ here",
		"<b>HTML-ish</b> & ampersands",
	}
	eventTitles = []string{"Discovery call", "Demo", "Onboarding", "Quarterly review", "Beratung", "Consulta"}
	evStatuses  = []string{"booked", "confirmed", "cancelled", "showed", "noshow", "invalid"}
	noteColors  = []string{"", "", "yellow", "blue", "red"}
	zones       = []*time.Location{time.FixedZone("", -5*3600), time.FixedZone("", 2*3600), time.FixedZone("", 5*3600+1800), time.UTC}
)

// Pools of shared values: generated contacts point into them, and every
// edit works on a clone (cloneContact), so they are never written.
var (
	dndPool         = makeDNDPool()
	attributionPool = makeAttributionPool()
)

func makeDNDPool() []map[string]api.DNDChannel {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]map[string]api.DNDChannel, 64)
	for i := range out {
		out[i] = map[string]api.DNDChannel{}
		for _, ch := range dndChans {
			if r.Float64() < 0.6 {
				st := "inactive"
				if r.Float64() < 0.3 {
					st = "active"
				}
				out[i][ch] = api.DNDChannel{Status: st, Message: "Updated by user", Code: "103"}
			}
		}
	}
	return out
}

func makeAttributionPool() []json.RawMessage {
	var out []json.RawMessage
	for _, src := range sources {
		for _, medium := range []string{"organic", "cpc", "referral"} {
			out = append(out, json.RawMessage(`{"url":"https://example.org/landing?utm_source=`+src+
				`","campaign":"spring","medium":"`+medium+`","sessionSource":"Direct traffic","fbclid":null}`))
		}
	}
	return out
}

const (
	historyMs = 3 * 365 * 24 * 3600 * 1000
	dayMs     = 24 * 3600 * 1000
)

// genContact builds generated contact number idx of location loc.
func genContact(seed int64, epochMs int64, idx int, loc string) (api.Contact, int64, int64) {
	r := newRand(seed, saltContact, uint64(idx))
	c := api.Contact{ID: makeID(uint64(seed), saltContactID, uint64(idx)), LocationID: loc}
	addMs := epochMs - historyMs + r.Int64N(historyMs-dayMs)
	updMs := addMs
	if r.Float64() < 0.8 {
		updMs = addMs + r.Int64N(epochMs-addMs)
	}
	// Bulk updates: about 2.5% of contacts share one of 20 timestamps of the
	// last month, which gives dateUpdated ties that only the id breaks.
	if h := hash(uint64(seed), saltContact, uint64(idx), 99); h%40 == 0 {
		if t := epochMs - 30*dayMs + int64(h>>8%20)*dayMs + 12345; t >= addMs {
			updMs = t
		}
	}
	fillContact(r, &c, addMs, updMs, idx)
	return c, addMs, updMs
}

func fillContact(r *rand.Rand, c *api.Contact, addMs, updMs int64, idx int) {
	if r.Float64() < 0.95 {
		c.FirstName = pick(r, firstNames)
	}
	if r.Float64() < 0.9 {
		c.LastName = pick(r, lastNames)
	}
	c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	if r.Float64() < 0.8 {
		c.Email = "contact" + strconv.Itoa(idx) + "." + strconv.Itoa(r.IntN(1000)) + "@example.com"
	}
	switch p := r.Float64(); {
	case p < 0.55:
		c.Phone = "+1555" + strconv.Itoa(1000000+r.IntN(9000000))
	case p < 0.7:
		c.Phone = "+44 20 7946 " + strconv.Itoa(1000+r.IntN(9000))
	}
	if r.Float64() < 0.4 {
		c.CompanyName = pick(r, companies)
	}
	if n := r.IntN(6); n > 0 {
		c.Tags = make([]string, 0, n)
	}
	for range cap(c.Tags) {
		c.Tags = append(c.Tags, pick(r, tagPool))
	}
	c.Source = pick(r, sources)
	c.Type = "lead"
	if r.Float64() < 0.3 {
		c.Type = "customer"
	}
	if r.Float64() < 0.7 {
		c.AssignedTo = pick(r, users)
	}
	if r.Float64() < 0.5 {
		i := r.IntN(len(cities))
		c.Address1 = strconv.Itoa(1+r.IntN(999)) + " Main St"
		c.City, c.Country = cities[i], countries[i]
		c.PostalCode = strconv.Itoa(10000 + r.IntN(89999))
		c.State = "ST"
	}
	if r.Float64() < 0.2 {
		c.Website = "https://example.org/" + strconv.Itoa(idx)
	}
	c.Timezone = pick(r, timezones)
	c.DND = r.Float64() < 0.1
	if r.Float64() < 0.6 {
		c.DNDSettings = pick(r, dndPool) // shared: never edited in place
	}
	if r.Float64() < 0.3 {
		c.DateOfBirth = strconv.Itoa(1950+r.IntN(55)) + "-" + pad2(1+r.IntN(12)) + "-" + pad2(1+r.IntN(28))
	}
	c.DateAdded, c.DateUpdated = fmtMs(addMs), fmtMs(updMs)
	if r.Float64() < 0.5 {
		c.LastActivity = fmtMs(updMs - r.Int64N(dayMs))
	}
	for i := range r.IntN(5) {
		// The random draws are those of earlier versions (one kind of
		// four, then its material), so the rest of the world is unchanged;
		// the value is shaped by the field's definition (CustomFieldDefs).
		var m cfMaterial
		switch r.IntN(4) {
		case 0:
			m.s1 = pick(r, tagPool)
		case 1:
			m.f = math.Round(r.Float64()*10000) / 100
		case 2:
			m.s1, m.s2 = pick(r, tagPool), pick(r, tagPool)
		default:
			m.s1, m.n = pick(r, sources), r.IntN(100)
		}
		c.CustomFields = append(c.CustomFields, api.CustomField{ID: customFieldDefs[i].ID, Value: json.RawMessage(m.value(customFieldDefs[i].DataType))})
	}
	if r.Float64() < 0.5 {
		c.AttributionSource = pick(r, attributionPool)
	}
	if r.Float64() < 0.1 {
		c.AdditionalEmails = []string{"alt" + strconv.Itoa(idx) + "@example.net"}
	}
	if r.Float64() < 0.05 {
		c.AdditionalPhones = []string{"+1555" + strconv.Itoa(1000000+r.IntN(9000000))}
	}
	if r.Float64() < 0.1 {
		c.Followers = []string{pick(r, users)}
	}
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// kidOpts are what genKids needs of the world.
type kidOpts struct {
	zone     *time.Location // the location's: zone-less times are in it
	mismatch float64        // Config.ChildContactMismatch
}

// vendorExampleContactID is the contactId of the vendor's examples.
const vendorExampleContactID = "ve9EPM428h8vShlRW1KT"

// bodyContactID is the contactId a child's body carries: the path
// contact's, or for a share mismatch of children another one.
func bodyContactID(seed int64, idx, j int, salt uint64, path string, mismatch float64) string {
	if mismatch <= 0 {
		return path
	}
	h := hash(uint64(seed), salt, uint64(idx), uint64(j), 0xC1D)
	if unit(h) >= mismatch {
		return path
	}
	if h%2 == 0 {
		return vendorExampleContactID
	}
	return makeID(uint64(seed), saltContactID, uint64(idx+1)) // the next generated contact
}

// naiveLayout is how the appointments endpoint writes zone-less times.
const naiveLayout = "2006-01-02 15:04:05"

// dstSpan returns a 3-hour appointment centred on a daylight-saving change
// of z in year (spring when spring is set, else autumn), whose ends are
// neither in the spring gap nor in the autumn overlap, or false when z has
// no such change that year.
func dstSpan(z *time.Location, year int, spring bool) (start, end time.Time, ok bool) {
	t := time.Date(year, 1, 1, 12, 0, 0, 0, z)
	for range 4 {
		_, next := t.ZoneBounds()
		if next.IsZero() || next.Year() != year {
			return time.Time{}, time.Time{}, false
		}
		_, before := next.Add(-time.Second).Zone()
		_, after := next.Zone()
		if (after > before) == spring {
			start, end = next.Add(-90*time.Minute), next.Add(90*time.Minute)
			if unambiguous(start, z) && unambiguous(end, z) {
				return start, end, true
			}
			return time.Time{}, time.Time{}, false
		}
		t = next
	}
	return time.Time{}, time.Time{}, false
}

// unambiguous says whether t written as a zone-less time in z reads back as t.
func unambiguous(t time.Time, z *time.Location) bool {
	p, err := time.ParseInLocation(naiveLayout, t.In(z).Format(naiveLayout), z)
	if err != nil || !p.Equal(t) {
		return false
	}
	// In an overlap the same wall time names two instants: reject those too.
	for _, d := range []time.Duration{-time.Hour, time.Hour} {
		if o := t.Add(d); o.In(z).Format(naiveLayout) == t.In(z).Format(naiveLayout) {
			return false
		}
	}
	return true
}

// genKids builds the children of generated contact idx: about six on
// average, none for 15% of contacts, 30 or more for about 2%.
func genKids(seed int64, idx int, c *api.Contact, addMs, updMs int64, o kidOpts) *kids {
	r := newRand(seed, saltKids, uint64(idx))
	n := 0
	switch p := r.Float64(); {
	case p < 0.15:
	case p < 0.17:
		n = 30 + r.IntN(16)
	default:
		n = 1 + int(r.ExpFloat64()*5.9)
		n = min(n, 29)
	}
	k := &kids{}
	zone := o.zone
	if zone == nil {
		zone = time.UTC
	}
	span := max(updMs-addMs, 1)
	for j := range n {
		at := addMs + r.Int64N(span)
		switch p := r.Float64(); {
		case p < 0.3:
			t := api.Task{
				ID: makeID(uint64(seed), saltTask, uint64(idx), uint64(j)), Title: pick(r, taskTitles),
				Body: pick(r, noteBodies), AssignedTo: pick(r, users), Completed: r.Float64() < 0.4,
				ContactID: bodyContactID(seed, idx, j, saltTask, c.ID, o.mismatch),
			}
			if r.Float64() < 0.8 {
				t.DueDate = fmtMs(at + r.Int64N(30*dayMs))
			}
			k.tasks = append(k.tasks, t)
		case p < 0.75:
			nt := api.Note{
				ID: makeID(uint64(seed), saltNote, uint64(idx), uint64(j)), Body: pick(r, noteBodies), UserID: pick(r, users),
				DateAdded: fmtMs(at), ContactID: bodyContactID(seed, idx, j, saltNote, c.ID, o.mismatch),
				Color: pick(r, noteColors), Pinned: r.Float64() < 0.1,
			}
			if r.Float64() < 0.3 {
				nt.Title = "Note " + strconv.Itoa(j)
			}
			k.notes = append(k.notes, nt)
		default:
			start := time.UnixMilli(at + r.Int64N(60*dayMs)).Truncate(30 * time.Minute)
			end := start.Add(time.Duration(1+r.IntN(4)) * 30 * time.Minute)
			e := api.Event{
				ID: makeID(uint64(seed), saltEvent, uint64(idx), uint64(j)), CalendarID: "cal" + strconv.Itoa(r.IntN(3)) + "Pq8Rs7Tu6Vw5Xy4Za",
				Title: pick(r, eventTitles), Status: pick(r, evStatuses), AssignedUserID: pick(r, users),
				Address: "https://meet.example.com/" + strconv.Itoa(j), LocationID: c.LocationID,
				ContactID: bodyContactID(seed, idx, j, saltEvent, c.ID, o.mismatch),
				DateAdded: fmtMs(at), DateUpdated: fmtMs(at + r.Int64N(dayMs)),
			}
			e.AppointmentStatus = e.Status
			if r.Float64() < 0.6 {
				e.Users = []string{e.AssignedUserID}
				if r.Float64() < 0.3 {
					e.Users = append(e.Users, pick(r, users))
				}
			}
			if r.Float64() < 0.3 {
				e.Notes = pick(r, noteBodies)
			}
			if r.Float64() < 0.1 {
				e.GroupID = "grp" + strconv.Itoa(r.IntN(5)) + "Ab1Cd2Ef3Gh4Ij5K"
			}
			naive := r.Float64() < 0.5
			z := pick(r, zones)
			// One appointment in six straddles a daylight-saving change
			// of the location's zone, written zone-less.
			if h := hash(uint64(seed), saltEvent, uint64(idx), uint64(j), 0xD57); h%6 == 0 {
				if s0, e0, ok := dstSpan(zone, start.UTC().Year(), h>>8%2 == 0); ok {
					start, end, naive = s0, e0, true
				}
			}
			et := EventTime{ID: e.ID, Start: start.UTC(), End: end.UTC()}
			if naive {
				e.StartTime, e.EndTime = start.In(zone).Format(naiveLayout), end.In(zone).Format(naiveLayout)
				et.Zone = zone.String()
			} else {
				e.StartTime, e.EndTime = start.In(z).Format(time.RFC3339), end.In(z).Format(time.RFC3339)
			}
			k.events = append(k.events, e)
			if k.times == nil {
				k.times = map[string]EventTime{}
			}
			k.times[e.ID] = et
		}
	}
	return k
}
