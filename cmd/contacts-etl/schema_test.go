package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaDocUpToDate: docs/schema.md is what `contacts-etl schema
// --format markdown` prints for the built-in mapping (regenerate it with
// that command when the mapping changes).
func TestSchemaDocUpToDate(t *testing.T) {
	var out, errb bytes.Buffer
	if err := cmdSchema(context.Background(), []string{"--format", "markdown"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Error("docs/schema.md is stale: go run ./cmd/contacts-etl schema --format markdown > docs/schema.md")
	}
}

// TestSchemaMapping: --mapping adds and renames columns in the listing; a
// bad mapping is a usage error naming the column at fault.
func TestSchemaMapping(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("tables:\n  contacts:\n    columns:\n      - {name: homepage, was: website}\n      - {name: tier, custom_field: contact.tier, type: string, description: Tier.}\n"), 0o644)
	var out, errb bytes.Buffer
	if err := cmdSchema(context.Background(), []string{"--mapping", good}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "homepage") || strings.Contains(s, "  website ") || !strings.Contains(s, "custom field contact.tier") {
		t.Errorf("listing:\n%s", s)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("tables:\n  contacts:\n    columns:\n      - {name: Tier, from: x, type: money}\n"), 0o644)
	err := cmdSchema(context.Background(), []string{"--mapping", bad}, &out, &errb)
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "Tier") || !strings.Contains(err.Error(), "money") {
		t.Errorf("bad mapping: %v", err)
	}
	if err := useMapping(""); err != nil {
		t.Fatal(err)
	}
}
