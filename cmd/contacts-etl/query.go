package main

import (
	"context"
	dsql "database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/contacts-etl/contacts-etl/pipeline"
)

// errNotSelect refuses a query that is not a plain SELECT: query never
// writes, whatever the warehouse.
var errNotSelect = errors.New("query runs SELECT statements only (the warehouse is opened read-only)")

// cmdQuery runs one SELECT over the warehouse (a DuckDB file opened
// read-only, or a Parquet tree through the views its sink writes) and
// prints the result as an aligned table, CSV, JSON or a Parquet file.
func cmdQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("warehouse", "./warehouse.duckdb", "DuckDB file or Parquet folder to read")
	kind := fs.String("warehouse-type", "", "duckdb or parquet (default: parquet for a folder, duckdb for a file)")
	format := fs.String("format", "", "table, csv, json or parquet (default: table on a terminal, csv otherwise)")
	out := fs.String("out", "", "file to write (required for --format parquet)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: contacts-etl query [flags] "SELECT ..."`)
		fmt.Fprintln(stderr, "\nRuns one SELECT over the warehouse, read-only; writes are refused. The views of sql/views.sql")
		fmt.Fprintln(stderr, "(contact_360, open_tasks, overdue_tasks, upcoming_appointments, ...) are there.\n\nflags:")
		fs.PrintDefaults()
	}
	// Flags may follow the query.
	var sqlArgs []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return flag.ErrHelp
			}
			return usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		sqlArgs = append(sqlArgs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(sqlArgs) != 1 || strings.TrimSpace(sqlArgs[0]) == "" {
		return usageError{errors.New(`want one SQL argument: contacts-etl query "SELECT ..."`)}
	}
	query := strings.TrimRight(strings.TrimSpace(sqlArgs[0]), "; \n\t")
	if *kind == "" {
		*kind = pipeline.WarehouseDuckDB
		if st, err := os.Stat(*path); err == nil && st.IsDir() {
			*kind = pipeline.WarehouseParquet
		}
	}
	if *kind != pipeline.WarehouseDuckDB && *kind != pipeline.WarehouseParquet {
		return usageError{fmt.Errorf("warehouse type %q: want duckdb or parquet", *kind)}
	}
	if *format == "" {
		*format = "csv"
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			*format = "table"
		}
	}
	switch *format {
	case "table", "csv", "json":
	case "parquet":
		if *out == "" {
			return usageError{errors.New("--format parquet needs --out FILE")}
		}
	default:
		return usageError{fmt.Errorf("format %q: want table, csv, json or parquet", *format)}
	}
	db, err := openExisting(ctx, *kind, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := selectOnly(ctx, db, query); err != nil {
		return err
	}
	if *format == "parquet" {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("COPY (%s\n) TO %s (FORMAT parquet, COMPRESSION zstd)", query, sqlQuote(*out))); err != nil {
			return fmt.Errorf("query: %w", err)
		}
		return nil
	}
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	switch *format {
	case "csv":
		return writeCSV(stdout, rows)
	case "json":
		return writeJSON(stdout, rows)
	}
	return writeTable(stdout, rows)
}

// selectOnly refuses anything but SELECT statements: DuckDB serialises
// only SELECTs (json_serialize_sql answers an error object for the rest),
// and a query that is several statements is refused as well.
func selectOnly(ctx context.Context, db *dsql.DB, query string) error {
	var js string
	if err := db.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql("+sqlQuote(query)+") AS VARCHAR)").Scan(&js); err != nil {
		return fmt.Errorf("check query: %w", err)
	}
	var parsed struct {
		Error      bool              `json:"error"`
		ErrMsg     string            `json:"error_message"`
		Statements []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(js), &parsed); err != nil {
		return fmt.Errorf("check query: %w", err)
	}
	if parsed.Error {
		return usageError{fmt.Errorf("%w: %s", errNotSelect, parsed.ErrMsg)}
	}
	if len(parsed.Statements) != 1 {
		return usageError{fmt.Errorf("%w: one statement at a time (got %d)", errNotSelect, len(parsed.Statements))}
	}
	return nil
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// scanRows calls fn with each row's values, formatted as text (NULL as
// ok=false) or kept as values for JSON.
func scanRows(rows *dsql.Rows, fn func(vals []any) error) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// cellText is a value as text: times in RFC 3339 (UTC), lists and structs
// as JSON, NULL as the empty string with null=true.
func cellText(v any) (s string, null bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, false
	case []byte:
		return string(v), false
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), false
	case []any, map[string]any:
		b, err := json.Marshal(jsonValue(v))
		if err != nil {
			return fmt.Sprint(v), false
		}
		return string(b), false
	}
	return fmt.Sprint(v), false
}

// jsonValue makes v encodable by encoding/json: DuckDB maps come back
// with non-string keys, times go to UTC.
func jsonValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonValue(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonValue(e)
		}
		return out
	}
	return v
}

func writeTable(w io.Writer, rows *dsql.Rows) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	n := 0
	err = scanRows(rows, func(vals []any) error {
		cells := make([]string, len(vals))
		for i, v := range vals {
			s, null := cellText(v)
			if null {
				s = "NULL"
			}
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
		}
		n++
		_, err := fmt.Fprintln(tw, strings.Join(cells, "\t"))
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "(%d rows)\n", n)
	return err
}

func writeCSV(w io.Writer, rows *dsql.Rows) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(cols); err != nil {
		return err
	}
	err = scanRows(rows, func(vals []any) error {
		rec := make([]string, len(vals))
		for i, v := range vals {
			rec[i], _ = cellText(v)
		}
		return cw.Write(rec)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// writeJSON writes one JSON object per row (JSON lines), keys in column order.
func writeJSON(w io.Writer, rows *dsql.Rows) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	keys := make([][]byte, len(cols))
	for i, c := range cols {
		keys[i], _ = json.Marshal(c)
	}
	return scanRows(rows, func(vals []any) error {
		var b strings.Builder
		b.WriteByte('{')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(keys[i])
			b.WriteByte(':')
			j, err := json.Marshal(jsonValue(v))
			if err != nil {
				j, _ = json.Marshal(fmt.Sprint(v))
			}
			b.Write(j)
		}
		b.WriteString("}\n")
		_, err := io.WriteString(w, b.String())
		return err
	})
}
