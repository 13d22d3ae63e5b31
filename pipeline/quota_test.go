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
	if err := q.filter(fmt.Errorf("location b: %w", qe), "b"); err != nil {
		t.Fatalf("quota stop not swallowed: %v", err)
	}
	if q.stopped()["b"] == nil || q.stopped()["a"] != nil {
		t.Errorf("stopped %v", q.stopped())
	}
	if !q.only(q.err()) || q.only(errors.Join(q.err(), errors.New("boom"))) {
		t.Error("only() misjudges")
	}
}
