package pipeline

import (
	"errors"
	"fmt"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract"
)

// Locations have their own quotas: one stopping does not stop the others.
func TestStopIsPerLocation(t *testing.T) {
	q := newStops()
	if err := q.filter(errors.New("boom"), "a"); err == nil {
		t.Fatal("a failure was swallowed")
	}
	qe := &extract.QuotaError{Remaining: 10, Reserve: 10}
	if err := q.filter(&LocationError{Location: "b", Err: qe}, "b"); err != nil {
		t.Fatalf("quota stop not swallowed: %v", err)
	}
	if q.stopped()["b"] == nil || q.stopped()["a"] != nil {
		t.Errorf("stopped %v", q.stopped())
	}
	if !q.only(q.err()) || q.only(errors.Join(q.err(), errors.New("boom"))) {
		t.Error("only() misjudges")
	}
	// A location's error may wrap several errors: it stops the location
	// if one of them does; a failure of another location still fails.
	cred := &LocationError{Location: "c", Err: fmt.Errorf("%w: %w", ErrUnusable, errors.New("no token stored"))}
	fail := &LocationError{Location: "d", Err: errors.New("HTTP 500")}
	if !q.only(errors.Join(nil, errors.Join(cred))) || q.only(errors.Join(cred, fail)) {
		t.Error("only() misjudges wrapped location errors")
	}
}
