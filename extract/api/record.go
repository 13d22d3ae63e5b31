package api

import "encoding/json"

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
}
