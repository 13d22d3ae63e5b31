package api

import (
	"encoding/json"
	"time"
)

// Record is one raw record streamed from extract to transform: the JSON of
// one contact, task, note or event, with where it came from. When the API
// answered something that could not be split into records (a malformed child
// list, say), Raw holds the body and Problem says what was wrong; transform
// turns such a Record into a reject.
type Record struct {
	Resource   string // ResourceContacts, ResourceTasks, ...
	LocationID string
	ContactID  string // the parent contact for children; "" for contacts
	Raw        json.RawMessage
	Problem    string
	// Mark, when set, makes this item a checkpoint, not a record.
	Mark *Mark
}

// Mark travels in the record stream after the last record of a search page
// and of all the children of that page's contacts: everything before it is
// complete up to Cursor. Transform flushes its batches when it sees one and
// passes it on, so the loader can commit rows together with the cursor that
// covers them.
type Mark struct {
	LocationID string
	Resource   string
	Cursor     []any // searchAfter of the page's last contact; nil when the location is done
	Contacts   int   // contacts on the page
	Done       bool  // the location's stream is complete
	// IDs lists the contacts whose children were read in full before this
	// mark (the page's changed contacts, or a sweep's slice).
	IDs []string
	// Updated holds, for a search page's mark, the dateUpdated the search
	// gave each of IDs ("" when it gave none); nil for other marks.
	Updated []string
	// Gone lists contacts read by id that the API answered 404 for: they
	// were deleted upstream.
	Gone []string
	// Listing, on the mark that ends a complete bulk listing, says what
	// it listed: every live record of the location not in it (within its
	// time range) was deleted upstream. nil for a listing that is not
	// complete (a batch of contacts' tasks, say).
	Listing *Listing
}

// Listing is what one complete bulk listing of a location read.
type Listing struct {
	Resource string   // ResourceTasks or ResourceAppointments
	IDs      []string // ids of every record listed
	// From and To, when set, bound the listing to records whose start
	// time is in [From, To) (appointments read by time windows).
	From, To time.Time
}
