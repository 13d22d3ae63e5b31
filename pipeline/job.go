package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// Settings describe a run in plain values; a CLI or a service maps its
// configuration onto them and NewJob builds the Job.
type Settings struct {
	Source      string   // stored in every row's _source and in the state
	Command     string   // run, backfill, demo, ...
	PageLimit   int      // contacts per search page
	Concurrency int      // child requests in flight per location
	Children    []string // child resources to read per contact
	BatchRows   int      // rows per Arrow record batch
	CommitRows  int      // see Job.CommitRows
	Workers     int      // locations at once
	// NaiveZone is the zone of zone-less times for locations whose zone
	// neither the API nor their Location.Zone tells (default UTC).
	NaiveZone *time.Location
	Options   Options
}

// NewJob returns the job of a run starting now, with a new run id.
func NewJob(s Settings, locations []Location, sink load.Sink, log *slog.Logger) Job {
	run := load.Run{ID: NewRunID(), Source: s.Source, Command: s.Command, StartedAt: time.Now().UTC()}
	zone := s.NaiveZone
	if zone == nil {
		zone = time.UTC
	}
	return Job{
		Run:        run,
		Locations:  locations,
		Sink:       sink,
		Workers:    s.Workers,
		CommitRows: s.CommitRows,
		Log:        log,
		Options:    s.Options,
		Stream: extract.StreamOptions{
			Query:       extract.Query{PageLimit: s.PageLimit},
			Concurrency: s.Concurrency,
			Children:    s.Children,
		},
		Transform: transform.Config{Source: s.Source, RunID: run.ID, ExtractedAt: run.StartedAt, BatchRows: s.BatchRows, NaiveZone: zone},
	}
}

// NewRunID returns a run id: the UTC start time and 48 random bits.
func NewRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
