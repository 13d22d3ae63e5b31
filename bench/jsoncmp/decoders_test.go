package jsoncmp

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/transform"
)

// unmarshal is a library's json.Unmarshal.
type unmarshal func(data []byte, v any) error

// libs are the decoders measured besides ours, each used the natural way:
// Unmarshal into a struct of the fields we read.
var libs = []struct {
	name string
	u    unmarshal
}{
	{"encoding_json", json.Unmarshal},
	{"goccy", gojson.Unmarshal},
	// sonic.Unmarshal: ConfigDefault (strings may view the input, no
	// check of control characters inside strings)
	{"sonic", sonic.Unmarshal},
	// ConfigStd, "aiming at being compatible with encoding/json"
	{"sonic_std", sonic.ConfigStd.Unmarshal},
	{"segmentio", segjson.Unmarshal},
}

// ours is the name of our splitter and record decoder in the tables.
const ours = "ours"

// page is what the paginator reads of a search page: the contacts (raw),
// their id and dateUpdated, and the last contact's searchAfter.
type page struct {
	items   []json.RawMessage
	ids     []string
	updated []string
	after   []byte
}

// pageKey is extract's: the fields of a contact the paginator reads.
type pageKey struct {
	ID          string          `json:"id"`
	SearchAfter json.RawMessage `json:"searchAfter"`
	DateUpdated string          `json:"dateUpdated"`
}

// readPage is extract's decodePage with u: the page into
// api.SearchResponse, then each contact into pageKey.
func readPage(u unmarshal, b []byte) (page, error) {
	var resp api.SearchResponse
	if err := u(b, &resp); err != nil {
		return page{}, err
	}
	p := page{items: resp.Contacts, ids: make([]string, len(resp.Contacts)), updated: make([]string, len(resp.Contacts))}
	for i, raw := range resp.Contacts {
		var k pageKey
		_ = u(raw, &k) // a bad record is transform's to reject
		p.ids[i], p.updated[i], p.after = k.ID, k.DateUpdated, k.SearchAfter
	}
	return p, nil
}

// pageReader returns the search page reader of decoder name.
func pageReader(name string) func([]byte) (page, error) {
	if name == ours {
		return func(b []byte) (page, error) {
			items, ids, upd, after, err := extract.SplitSearchPage(b)
			return page{items, ids, upd, after}, err
		}
	}
	u := lib(name)
	return func(b []byte) (page, error) { return readPage(u, b) }
}

// childReader returns the child list reader of decoder name: the records
// of a tasks, notes or appointments answer.
func childReader(name string) func([]byte, string) ([]json.RawMessage, error) {
	if name == ours {
		return extract.SplitChildren
	}
	u := lib(name)
	return func(b []byte, res string) ([]json.RawMessage, error) {
		switch res {
		case api.ResourceTasks:
			var r api.TasksResponse
			err := u(b, &r)
			return r.Tasks, err
		case api.ResourceNotes:
			var r api.NotesResponse
			err := u(b, &r)
			return r.Notes, err
		case api.ResourceAppointments:
			var r api.EventsResponse
			err := u(b, &r)
			return r.Events, err
		}
		return nil, fmt.Errorf("no resource %q", res)
	}
}

// contactFields are the fields of a contact that the contacts mapping
// (sql/mapping.yaml) reads straight into a column, typed as the stage
// reads them: times as strings, JSON columns as raw text.
type contactFields struct {
	ID                string          `json:"id"`
	LocationID        string          `json:"locationId"`
	FirstName         string          `json:"firstName"`
	LastName          string          `json:"lastName"`
	Name              string          `json:"name"`
	ContactName       string          `json:"contactName"`
	Email             string          `json:"email"`
	Phone             string          `json:"phone"`
	CompanyName       string          `json:"companyName"`
	Tags              []string        `json:"tags"`
	Source            string          `json:"source"`
	Type              string          `json:"type"`
	AssignedTo        string          `json:"assignedTo"`
	Address1          string          `json:"address1"`
	City              string          `json:"city"`
	State             string          `json:"state"`
	PostalCode        string          `json:"postalCode"`
	Country           string          `json:"country"`
	Website           string          `json:"website"`
	Timezone          string          `json:"timezone"`
	DND               *bool           `json:"dnd"`
	DNDSettings       json.RawMessage `json:"dndSettings"`
	DateOfBirth       string          `json:"dateOfBirth"`
	DateAdded         string          `json:"dateAdded"`
	DateUpdated       string          `json:"dateUpdated"`
	LastActivity      string          `json:"lastActivity"`
	CustomFields      json.RawMessage `json:"customFields"`
	AttributionSource json.RawMessage `json:"attributionSource"`
	AdditionalEmails  []string        `json:"additionalEmails"`
	AdditionalPhones  []string        `json:"additionalPhones"`
	Followers         []string        `json:"followers"`
	BusinessName      string          `json:"businessName"`
}

// contactDecoder returns the contact decoder of decoder name: the
// record's id, the fields read.
func contactDecoder(name string) (func([]byte) (string, error), error) {
	if name == ours {
		d, err := transform.NewFieldDecoder(api.ResourceContacts)
		if err != nil {
			return nil, err
		}
		return func(raw []byte) (string, error) { return d.Decode(raw, nil) }, nil
	}
	u := lib(name)
	return func(raw []byte) (string, error) {
		var c contactFields
		if err := u(raw, &c); err != nil {
			return "", err
		}
		if c.ID == "" {
			return "", errors.New("missing id")
		}
		return c.ID, nil
	}, nil
}

func lib(name string) unmarshal {
	for _, l := range libs {
		if l.name == name {
			return l.u
		}
	}
	panic("no decoder " + name)
}

// decoders are every decoder's name, ours last.
func decoders() []string {
	var ns []string
	for _, l := range libs {
		ns = append(ns, l.name)
	}
	return append(ns, ours)
}
