package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// The small things seen by users: each must just work.
func TestDemoOnParquetExitsZero(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pq")
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), []string{"demo", "--warehouse-type", "parquet", "--warehouse", dir,
		"--contacts", "150", "--sim-addr", "127.0.0.1:0"}, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), "analyst query") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestReconcileEveryNegativeMeansNever(t *testing.T) {
	for _, v := range []string{"-1", "-1s", "24h", "0"} {
		cfg, err := parseValidConfig("run", []string{"--locations", "l", "--warehouse", filepath.Join(t.TempDir(), "w.duckdb"),
			"--reconcile-every", v}, io.Discard, nil)
		if err != nil {
			t.Errorf("--reconcile-every %s: %v", v, err)
			continue
		}
		if never := cfg.Incremental.ReconcileEvery < 0; never != strings.HasPrefix(v, "-") {
			t.Errorf("--reconcile-every %s = %v", v, cfg.Incremental.ReconcileEvery)
		}
	}
}

func TestSimulatePrintsWhereTheSecretComesFrom(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // print, then stop at once
	var out bytes.Buffer
	if code := dispatch(ctx, []string{"simulate", "--addr", "127.0.0.1:0"}, &out, io.Discard); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "CONTACTS_ETL_CLIENT_SECRET") || !strings.Contains(out.String(), "client id") {
		t.Errorf("simulate printed:\n%s", out.String())
	}
}
