package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// serveFlags are serve's own flags.
type serveFlags struct {
	listen     string
	applyEvery time.Duration
	keys       string // files with public keys, comma-separated
	maxBody    int64
	maxPending int
	maxLag     time.Duration
}

// cmdServe receives the API's signed webhooks into the inbox beside the
// warehouse and applies them every --apply-every as a targeted run.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sf := serveFlags{listen: "127.0.0.1:8080", applyEvery: webhook.DefaultApplyEvery, maxBody: webhook.DefaultMaxBody,
		maxPending: webhook.DefaultMaxPending, maxLag: webhook.DefaultMaxLag}
	var logFormat string
	cfg, err := parseValidConfig("serve", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&sf.listen, "listen", sf.listen, "address to receive webhooks on (POST any path; GET /healthz, /readyz)")
		fs.DurationVar(&sf.applyEvery, "apply-every", sf.applyEvery, "apply received events this often, as one targeted run")
		fs.StringVar(&sf.keys, "webhook-keys", "", "files holding the webhook public keys (PEM or base64 SPKI, Ed25519 or RSA), comma-separated; default: the vendor's published keys")
		fs.Int64Var(&sf.maxBody, "max-body", sf.maxBody, "largest webhook body in bytes (larger: 413)")
		fs.IntVar(&sf.maxPending, "max-pending", sf.maxPending, "unapplied events the inbox holds before answering 429")
		fs.DurationVar(&sf.maxLag, "max-lag", sf.maxLag, "answer 429 while the oldest unapplied event is older than this")
		fs.StringVar(&logFormat, "log-format", "", "text or json (default: text on a terminal, json otherwise)")
	})
	if err != nil {
		return err
	}
	if cfg, err = cfg.single("serve"); err != nil {
		return err
	}
	if err := (reportFlags{LogFormat: logFormat}).validate(); err != nil {
		return err
	}
	if sf.applyEvery <= 0 {
		return usageError{errors.New("--apply-every must be positive")}
	}
	keys := webhook.DefaultKeys()
	if sf.keys != "" {
		var pems []string
		for _, f := range strings.Split(sf.keys, ",") {
			b, err := os.ReadFile(strings.TrimSpace(f))
			if err != nil {
				return usageError{fmt.Errorf("webhook key: %w", err)}
			}
			pems = append(pems, string(b))
		}
		if keys, err = webhook.ParseKeys(pems); err != nil {
			return usageError{err}
		}
	}
	log := newReportLogger(stderr, cfg.LogLevel, logFormat)
	zone, err := time.LoadLocation(cfg.NaiveTimeZone)
	if err != nil {
		return usageError{fmt.Errorf("naive time zone: %w", err)}
	}
	sources, err := tokenSources(ctx, cfg)
	if err != nil {
		return err
	}
	var archive *pipeline.Archive
	co := cfg.clientOptions()
	if cfg.Archive != "" {
		archive = pipeline.NewArchive(cfg.Archive)
		co.Observe = archive.Observer
	}
	clients, err := pipeline.Clients(cfg.Locations, sources, co)
	if err != nil {
		return usageError{err}
	}
	zones := map[string]*time.Location{}
	for l, z := range cfg.TimeZones {
		zones[l], _ = time.LoadLocation(z) // validated
	}
	in, err := webhook.OpenInbox(webhook.InboxDir(cfg.Warehouse.Path), webhook.InboxOptions{MaxPending: sf.maxPending, MaxLag: sf.maxLag})
	if err != nil {
		return err
	}
	defer in.Close()
	ln, err := net.Listen("tcp", sf.listen)
	if err != nil {
		return usageError{err}
	}
	apply := &webhook.PipelineApply{Kind: cfg.Warehouse.Type, Path: cfg.Warehouse.Path, Settings: cfg.settings("webhook", zone), Archive: archive,
		Clients: clients, Zones: zones, Log: log}
	svc := &webhook.Service{
		Receiver:   webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: keys, MaxBody: sf.maxBody, Log: log}),
		Applier:    &webhook.Applier{Inbox: in, Apply: apply.Apply, Locations: cfg.Locations, Log: log},
		ApplyEvery: sf.applyEvery,
		Log:        log,
	}
	fmt.Fprintf(stdout, "receiving webhooks on http://%s (inbox %s, apply every %s)\n", ln.Addr(), webhook.InboxDir(cfg.Warehouse.Path), sf.applyEvery)
	err = svc.Serve(ctx, ln)
	st := in.Stats()
	fmt.Fprintf(stdout, "stopped: %d events wait in the inbox for the next apply\n", st.Depth)
	return err
}
