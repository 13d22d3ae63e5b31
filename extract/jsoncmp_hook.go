//go:build jsoncmp

package extract

import "encoding/json"

// This file is built only with the jsoncmp tag, by bench/jsoncmp (make
// bench-json), which measures the splitter against other JSON decoders; it
// is in no build of the exporter.

// SplitSearchPage is readPage of a search page body: its contacts, their
// ids and dateUpdated, and the last contact's searchAfter.
func SplitSearchPage(b []byte) (contacts []json.RawMessage, ids, updated []string, after []byte, err error) {
	sp, err := readPage(b, MaxPageLimit)
	return sp.items, sp.ids, sp.updated, sp.after, err
}

// SplitChildren is splitChildren: the records of a tasks, notes or
// appointments answer.
func SplitChildren(b []byte, resource string) ([]json.RawMessage, error) {
	return splitChildren(b, resource)
}
