package load

import (
	"errors"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// writeParquet writes recs to f as one zstd Parquet file with row groups of
// at most cfg.rowGroupRows rows, syncs it and closes f (also on error).
func writeParquet(f *os.File, schema *arrow.Schema, recs []arrowRecord, cfg config) error {
	return writeParquetSync(f, schema, recs, cfg, true)
}

// writeParquetSync is writeParquet, syncing f only when sync is set (files
// that are never published, such as a commit's inputs, need no fsync).
func writeParquetSync(f *os.File, schema *arrow.Schema, recs []arrowRecord, cfg config, sync bool) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(cfg.rowGroupRows),
		parquet.WithAllocator(cfg.mem),
	)
	w, err := pqarrow.NewFileWriter(schema, nopCloser{f}, props,
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(cfg.mem)))
	if err != nil {
		f.Close()
		return fmt.Errorf("parquet writer %s: %w", f.Name(), err)
	}
	for _, r := range recs {
		if err := w.WriteBuffered(r); err != nil {
			return errors.Join(fmt.Errorf("write parquet %s: %w", f.Name(), err), w.Close(), f.Close())
		}
	}
	if err := w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("close parquet writer %s: %w", f.Name(), err)
	}
	if !sync {
		return f.Close()
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return f.Close()
}

// nopCloser keeps pqarrow's Close from closing the file before it is synced.
type nopCloser struct{ *os.File }

func (nopCloser) Close() error { return nil }
