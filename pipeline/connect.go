package pipeline

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/load"
)

// Warehouse types.
const (
	WarehouseDuckDB  = "duckdb"
	WarehouseParquet = "parquet"
)

// ClientOptions configure the per-location API clients of a run.
type ClientOptions struct {
	BaseURL      string
	Concurrency  int // requests in flight per location (sizes the connection pool)
	RateMax      int // requests per RateInterval per location, before the headers steer it
	RateInterval time.Duration
	DailyReserve extract.Reserve
	MaxRetries   int   // per request
	RetryBudget  int64 // per run, shared by every location (0: no limit)
	// Observe, if set, gives each location's client a request observer
	// (e.g. Archive.Observer).
	Observe func(location string) func(extract.Exchange)
	// RetryDelayScale, if set, scales every wait before a retry
	// (extract.WithRetryDelayScale): measurements only.
	RetryDelayScale *float64
}

// Clients returns one client per location, each with its own rate
// governor, authorised by its token source (a 401 forces one refresh and a
// replay, see auth.Transport), sharing one connection pool and one retry
// budget.
func Clients(locations []string, sources map[string]oauth2.TokenSource, o ClientOptions) ([]*extract.Client, error) {
	base := NewTransport(max(1, o.Concurrency) * max(1, len(locations)))
	retries := extract.NewRetryBudget(o.RetryBudget)
	out := make([]*extract.Client, 0, len(locations))
	for _, loc := range locations {
		ts, ok := sources[loc]
		if !ok {
			return nil, fmt.Errorf("location %s: no credentials", loc)
		}
		hc := &http.Client{Transport: auth.NewTransport(ts, base), Timeout: extract.DefaultTimeout}
		gov := extract.NewRateGovernor(o.RateMax, o.RateInterval, extract.WithDailyReserve(o.DailyReserve))
		opts := []extract.Option{extract.WithGovernor(gov), extract.WithRetries(o.MaxRetries, retries)}
		if o.Observe != nil {
			opts = append(opts, extract.WithObserver(o.Observe(loc)))
		}
		if o.RetryDelayScale != nil {
			opts = append(opts, extract.WithRetryDelayScale(*o.RetryDelayScale))
		}
		c, err := extract.NewClient(o.BaseURL, loc, hc, opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// OpenSink returns the sink of a warehouse of the given type.
func OpenSink(kind, path string, opts ...load.Option) (load.Sink, error) {
	switch kind {
	case WarehouseDuckDB:
		return load.NewDuckDB(path, opts...)
	case WarehouseParquet:
		return load.NewParquet(path, opts...)
	}
	return nil, fmt.Errorf("warehouse type %q not supported (want duckdb or parquet)", kind)
}

// NewTransport is the HTTP transport of the API clients, pooled for conns
// connections.
func NewTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}
