package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// DefaultApplyEvery is serve's default --apply-every.
const DefaultApplyEvery = 30 * time.Second

// CommandWebhook is the command recorded in the runs table for applies.
const CommandWebhook = "webhook"

// PipelineApply reads targets through the run package: one job with
// Options.TargetsOnly over the locations that have targets, under the
// warehouse's run lock (waiting for a scheduled run to finish).
type PipelineApply struct {
	Kind, Path string
	Settings   pipeline.Settings
	Clients    []*extract.Client
	Zones      map[string]*time.Location // configured zones by location, optional
	// Locked: the caller already holds the run lock (a scheduled run
	// draining the inbox); Apply then does not take it.
	Locked bool
	Log    *slog.Logger
	// Archive, if set, archives the apply's runs like a scheduled run's.
	Archive *pipeline.Archive
}

// Apply is an ApplyFunc.
func (p *PipelineApply) Apply(ctx context.Context, targets map[string][]string) (string, error) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var locs []pipeline.Location
	for _, c := range p.Clients {
		if ids := targets[c.Location()]; len(ids) > 0 {
			locs = append(locs, pipeline.Location{Client: c, Zone: p.Zones[c.Location()], Targets: ids})
		}
	}
	if len(locs) == 0 {
		return "", nil
	}
	sink, err := pipeline.OpenSink(p.Kind, p.Path, load.WithLogger(log))
	if err != nil {
		return "", err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	if !p.Locked {
		unlock, err := pipeline.Lock(ctx, p.Kind, p.Path, true, log)
		if err != nil {
			return "", err
		}
		defer unlock()
	}
	s := p.Settings
	s.Command = CommandWebhook
	s.Options.TargetsOnly = true
	j := pipeline.NewJob(s, locs, sink, log)
	j.Archive = p.Archive
	_, err = pipeline.Run(ctx, j)
	return j.Run.ID, err
}

// Drain applies whatever a serve left unapplied in the warehouse's inbox:
// a scheduled run calls it (with an apply that does not take the run lock
// if the run holds it). When a serve holds the inbox it returns ErrBusy
// (that serve applies its own events). No inbox: nothing to do.
func Drain(ctx context.Context, warehousePath string, locations []string, apply ApplyFunc, log *slog.Logger) (LastApply, error) {
	in, err := OpenInbox(InboxDir(warehousePath), InboxOptions{})
	if err != nil {
		return LastApply{}, err
	}
	defer in.Close()
	a := &Applier{Inbox: in, Apply: apply, Locations: locations, Log: log}
	return a.Once(ctx)
}

// Status reads a warehouse's inbox state (depth, oldest unapplied event,
// last apply) without disturbing a running serve.
func Status(warehousePath string) (Stats, error) {
	return ReadStats(InboxDir(warehousePath))
}

// Service is a running serve: the receiver on a listener and the applier
// on a timer.
type Service struct {
	Receiver   *Receiver
	Applier    *Applier
	ApplyEvery time.Duration // DefaultApplyEvery if 0
	// ShutdownTimeout bounds the wait for in-flight requests (30 s if 0).
	ShutdownTimeout time.Duration
	Log             *slog.Logger
}

// Serve serves ln until ctx ends, applying every ApplyEvery. On the way
// out it stops taking connections and waits for in-flight requests, whose
// events are durable or refused before they are answered; it does not
// close the inbox.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := s.ApplyEvery
	if every <= 0 {
		every = DefaultApplyEvery
	}
	srv := &http.Server{Handler: s.Receiver, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var serr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case serr = <-errc:
			break loop
		case <-tick.C:
			if _, err := s.Applier.Once(ctx); err != nil && ctx.Err() == nil {
				log.Error("webhook apply failed; the events stay in the inbox", "err", err)
			}
		}
	}
	to := s.ShutdownTimeout
	if to <= 0 {
		to = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), to)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("webhook shutdown: %w", err)
	}
	if serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("webhook serve: %w", serr)
	}
	return nil
}
