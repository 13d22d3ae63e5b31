package load

import (
	"context"
	"testing"
)

// A run whose process died stays "running" until the next Start, which
// closes it as "aborted"; a finished run keeps its outcome, and another
// source's runs are left alone.
func TestStartClosesAbortedRuns(t *testing.T) {
	ctx := context.Background()
	for _, tg := range []target{duckTarget(IngestArrow), parquetTarget()} {
		t.Run(tg.name, func(t *testing.T) {
			dir := t.TempDir()
			s := tg.open(t, dir)
			for _, r := range []Run{{ID: "done", Source: "src"}, {ID: "killed", Source: "src"}, {ID: "other", Source: "other"}} {
				r.Command, r.StartedAt = "run", t0
				if _, err := s.Start(ctx, r); err != nil {
					t.Fatal(err)
				}
				if r.ID == "done" {
					if err := s.Finish(ctx, RunResult{RunID: "done", Outcome: "ok"}); err != nil {
						t.Fatal(err)
					}
				}
			}
			s = tg.open(t, dir) // the next process
			if _, err := s.Start(ctx, Run{ID: "next", Source: "src", Command: "run", StartedAt: t1}); err != nil {
				t.Fatal(err)
			}
			for id, want := range map[string]string{"done": "ok", "killed": "aborted", "other": "running", "next": "running"} {
				if got, _ := tg.run(t, dir, id); got != want {
					t.Errorf("run %s: %q, want %q", id, got, want)
				}
			}
		})
	}
}
