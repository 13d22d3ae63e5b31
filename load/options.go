package load

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Defaults of the sinks' options.
const (
	DefaultLockTimeout  = 2 * time.Minute
	DefaultRowGroupRows = 128 * 1024
	DefaultIngest       = IngestArrow
	// DefaultDuckDBThreads: one DuckDB worker thread. A commit's merge is
	// small next to the export around it; on two cores more threads cost
	// more CPU than they save (see BENCHMARKS.md, issue 10).
	DefaultDuckDBThreads = 1
	// DefaultDuckDBMemory bounds DuckDB's buffer pool (its memory_limit);
	// beyond it DuckDB spills to a temporary directory beside the file.
	DefaultDuckDBMemory = "64MB"
)

// Ingest is how the DuckDB sink moves a commit's Arrow records into its
// staging tables before the merge.
type Ingest int

const (
	// IngestArrow registers the records as a DuckDB Arrow view (no copy)
	// and materialises it with CREATE TEMP TABLE AS.
	IngestArrow Ingest = iota
	// IngestAppender appends the rows one by one through DuckDB's Appender.
	IngestAppender
	// IngestParquet writes the records to a temporary Parquet file (zstd)
	// and reads it with read_parquet.
	IngestParquet
)

func (i Ingest) String() string {
	switch i {
	case IngestArrow:
		return "arrow"
	case IngestAppender:
		return "appender"
	case IngestParquet:
		return "parquet"
	}
	return fmt.Sprintf("Ingest(%d)", int(i))
}

// Option configures a sink. Options that do not apply to a sink are ignored.
type Option func(*config)

type config struct {
	lockTimeout  time.Duration
	ingest       Ingest
	tempDir      string
	mem          memory.Allocator
	rowGroupRows int64
	log          *slog.Logger
	fileRows     int64 // Parquet: rows per bucket file before a partition's buckets double
	duckThreads  int
	duckMemory   string
}

func newConfig(opts []Option) config {
	c := config{
		lockTimeout:  DefaultLockTimeout,
		ingest:       DefaultIngest,
		tempDir:      os.TempDir(),
		mem:          memory.DefaultAllocator,
		rowGroupRows: DefaultRowGroupRows,
		fileRows:     DefaultParquetFileRows,
		duckThreads:  DefaultDuckDBThreads,
		duckMemory:   DefaultDuckDBMemory,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithLockTimeout bounds how long the DuckDB sink waits for another process
// to release the warehouse file before it fails with ErrLocked.
func WithLockTimeout(d time.Duration) Option { return func(c *config) { c.lockTimeout = d } }

// WithIngest chooses the DuckDB sink's staging path (default DefaultIngest).
func WithIngest(i Ingest) Option { return func(c *config) { c.ingest = i } }

// WithTempDir sets where the DuckDB sink writes staging Parquet files
// (IngestParquet only; default os.TempDir()).
func WithTempDir(dir string) Option { return func(c *config) { c.tempDir = dir } }

// WithAllocator sets the Arrow allocator used for records the sinks build
// themselves (reading state, Parquet writing).
func WithAllocator(mem memory.Allocator) Option { return func(c *config) { c.mem = mem } }

// WithLogger makes the sinks say what they wait for (another process
// holding the warehouse file). Default: silent.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithRowGroupRows bounds the rows per Parquet row group (default
// DefaultRowGroupRows).
func WithRowGroupRows(n int64) Option { return func(c *config) { c.rowGroupRows = n } }

// WithParquetFileRows bounds the rows of one Parquet bucket file (default
// DefaultParquetFileRows): a partition whose rows would exceed it per
// bucket is rewritten with twice the buckets, as often as needed.
func WithParquetFileRows(n int64) Option { return func(c *config) { c.fileRows = n } }

// WithDuckDBThreads sets DuckDB's threads setting for the DuckDB sink's
// sessions (default DefaultDuckDBThreads; 0: DuckDB's own default, one per
// core).
func WithDuckDBThreads(n int) Option { return func(c *config) { c.duckThreads = n } }

// WithDuckDBMemory sets DuckDB's memory_limit for the DuckDB sink's
// sessions, in DuckDB's syntax ("256MB", "1GiB"; default
// DefaultDuckDBMemory; "": DuckDB's own default, 80% of RAM).
func WithDuckDBMemory(limit string) Option { return func(c *config) { c.duckMemory = limit } }
