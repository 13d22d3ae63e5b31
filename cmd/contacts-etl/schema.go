package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// cmdSchema prints the tables and columns the mapping in use defines
// (the built-in one, or it merged with --mapping / the config's mapping).
func cmdSchema(_ context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "YAML config file (its mapping key is used)")
	mapping := fs.String("mapping", "", "YAML mapping file merged over the built-in mapping")
	format := fs.String("format", "text", "text or markdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if *config != "" {
		if err := loadConfigFile(*config, &cfg); err != nil {
			return usageError{err}
		}
	}
	if *mapping != "" {
		cfg.Mapping = *mapping
	}
	if err := useMapping(cfg.Mapping); err != nil {
		return usageError{err}
	}
	switch *format {
	case "text":
		return writeSchemaText(stdout)
	case "markdown":
		return writeSchemaMarkdown(stdout)
	}
	return usageError{fmt.Errorf("format %q: want text or markdown", *format)}
}

// schemaTables are the tables `schema` lists: those the mapping drives and
// the reject tables.
func schemaTables() []whsql.Table {
	var out []whsql.Table
	for _, t := range whsql.Tables {
		if t.Name != whsql.Actions.Name {
			out = append(out, t)
		}
	}
	return out
}

func columnInfo(t whsql.Table, i int) (typ, from, doc string) {
	fl := t.Schema.Field(i)
	typ, _ = whsql.DuckDBType(fl.Type)
	if !fl.Nullable {
		typ += " NOT NULL"
	}
	if i < len(t.Cols) && t.Cols[i] != nil {
		c := t.Cols[i]
		switch {
		case c.CustomField != "":
			from = "custom field " + c.CustomField
		case c.Compute != "":
			from = "(" + c.Compute + ")"
		default:
			from = strings.Join(c.From, " | ")
		}
		if c.Normalize != "" {
			from += " → " + c.Normalize
		}
	}
	if i < len(t.Docs) {
		doc = t.Docs[i]
	}
	return typ, from, doc
}

func writeSchemaText(w io.Writer) error {
	for _, t := range schemaTables() {
		fmt.Fprintf(w, "%s — %s\n", t.Name, t.Description)
		for i, fl := range t.Schema.Fields() {
			typ, from, doc := columnInfo(t, i)
			if from != "" {
				doc = "[" + from + "] " + doc
			}
			fmt.Fprintf(w, "  %-20s %-26s %s\n", fl.Name, typ, doc)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func writeSchemaMarkdown(w io.Writer) error {
	for _, t := range schemaTables() {
		fmt.Fprintf(w, "### `%s`\n\n%s\n\n| column | type | from | description |\n|---|---|---|---|\n", t.Name, t.Description)
		for i, fl := range t.Schema.Fields() {
			typ, from, doc := columnInfo(t, i)
			if from != "" {
				from = "`" + from + "`"
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", fl.Name, typ, from, strings.ReplaceAll(doc, "|", `\|`))
		}
		fmt.Fprintln(w)
	}
	return nil
}
