package pipeline

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/load"
)

func TestPlanWindows(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	run := load.Run{ID: "r2", Source: "s", StartedAt: now}
	wm := func(v time.Time) load.Watermark {
		return load.Watermark{Source: "s", LocationID: "L", Resource: "contacts", Value: v}
	}
	win := func(start, end time.Time, status, cursor, kind string) load.Window {
		return load.Window{Source: "s", LocationID: "L", Resource: "contacts", Start: start, End: end, Status: status, Cursor: cursor, RunID: "r1", Kind: kind}
	}
	type want struct {
		start, end time.Time
		kind       string
		after      []any
	}
	lb := 10 * time.Minute
	prev := now.Add(-time.Hour) // the previous run's start
	cases := []struct {
		name  string
		st    *load.State
		opt   Options
		want  []want
		wmark time.Time
	}{
		{name: "first run reads from the epoch", st: &load.State{}, opt: Options{Lookback: lb},
			want: []want{{epoch, now, KindRun, nil}}},
		{name: "nil state is a first run", opt: Options{Lookback: lb},
			want: []want{{epoch, now, KindRun, nil}}},
		{name: "incremental starts a lookback before the watermark",
			st:  &load.State{Watermarks: []load.Watermark{wm(prev.Add(-lb))}},
			opt: Options{Lookback: lb}, wmark: prev.Add(-lb),
			want: []want{{prev.Add(-2 * lb), now, KindRun, nil}}},
		{name: "other locations' state is ignored",
			st: &load.State{Watermarks: []load.Watermark{{Source: "s", LocationID: "M", Resource: "contacts", Value: prev}},
				Windows: []load.Window{{Source: "s", LocationID: "M", Resource: "contacts", Start: epoch, End: prev, Status: "open", Cursor: `[1,"x"]`, Kind: KindRun}}},
			opt: Options{Lookback: lb}, want: []want{{epoch, now, KindRun, nil}}},
		{name: "an open window resumes from its cursor, then the new window",
			st: &load.State{Watermarks: []load.Watermark{wm(prev.Add(-day))},
				Windows: []load.Window{win(prev.Add(-day-lb), prev, "open", `[1717243200000,"c42"]`, KindRun)}},
			opt: Options{Lookback: lb}, wmark: prev.Add(-day),
			want: []want{
				{prev.Add(-day - lb), prev, KindRun, []any{jsonNumber("1717243200000"), "c42"}},
				{prev.Add(-2 * lb), now, KindRun, nil},
			}},
		{name: "an open first window resumes and the next starts at its end less the lookback",
			st:  &load.State{Windows: []load.Window{win(epoch, prev, "open", `[5,"a"]`, KindRun)}},
			opt: Options{Lookback: lb},
			want: []want{
				{epoch, prev, KindRun, []any{jsonNumber("5"), "a"}},
				{prev.Add(-2 * lb), now, KindRun, nil},
			}},
		{name: "an open window without a cursor restarts from its start",
			st:   &load.State{Windows: []load.Window{win(epoch, prev, "open", "", KindRun)}},
			opt:  Options{Lookback: lb},
			want: []want{{epoch, prev, KindRun, nil}, {prev.Add(-2 * lb), now, KindRun, nil}}},
		{name: "full reads from the epoch whatever the watermark",
			st:  &load.State{Watermarks: []load.Watermark{wm(prev)}},
			opt: Options{Lookback: lb, Full: true}, wmark: prev,
			want: []want{{epoch, now, KindRun, nil}}},
		{name: "a watermark in the future (our clock behind) reads nothing new",
			st:  &load.State{Watermarks: []load.Watermark{wm(now.Add(time.Hour))}},
			opt: Options{Lookback: lb}, wmark: now.Add(time.Hour)},
		{name: "backfill splits the range, the last window short",
			st:  &load.State{},
			opt: Options{Backfill: true, From: now.Add(-10 * day), To: now.Add(-3*day - 12*time.Hour), Window: 3 * day},
			want: []want{
				{now.Add(-10 * day), now.Add(-7 * day), KindBackfill, nil},
				{now.Add(-7 * day), now.Add(-4 * day), KindBackfill, nil},
				{now.Add(-4 * day), now.Add(-3*day - 12*time.Hour), KindBackfill, nil},
			}},
		{name: "backfill skips done windows and resumes open ones",
			st: &load.State{Windows: []load.Window{
				win(now.Add(-10*day), now.Add(-7*day), "done", "", KindBackfill),
				win(now.Add(-7*day), now.Add(-4*day), "open", `[9,"z"]`, KindBackfill),
			}},
			opt:  Options{Backfill: true, From: now.Add(-10 * day), To: now.Add(-4 * day), Window: 3 * day},
			want: []want{{now.Add(-7 * day), now.Add(-4 * day), KindBackfill, []any{jsonNumber("9"), "z"}}}},
		{name: "redo re-reads done windows",
			st:   &load.State{Windows: []load.Window{win(now.Add(-10*day), now.Add(-7*day), "done", "", KindBackfill)}},
			opt:  Options{Backfill: true, From: now.Add(-10 * day), To: now.Add(-7 * day), Window: 3 * day, Redo: true},
			want: []want{{now.Add(-10 * day), now.Add(-7 * day), KindBackfill, nil}}},
		{name: "a done window of another size is read again",
			st:   &load.State{Windows: []load.Window{win(now.Add(-10*day), now.Add(-9*day), "done", "", KindBackfill)}},
			opt:  Options{Backfill: true, From: now.Add(-10 * day), To: now.Add(-7 * day), Window: 3 * day},
			want: []want{{now.Add(-10 * day), now.Add(-7 * day), KindBackfill, nil}}},
		{name: "backfill never moves the watermark it reports",
			st:  &load.State{Watermarks: []load.Watermark{wm(prev)}},
			opt: Options{Backfill: true, From: now.Add(-2 * day), To: now.Add(-day), Window: day}, wmark: prev,
			want: []want{{now.Add(-2 * day), now.Add(-day), KindBackfill, nil}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, gotWM, err := PlanWindows(c.st, run, "L", c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !gotWM.Equal(c.wmark) {
				t.Errorf("watermark %v, want %v", gotWM, c.wmark)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d windows, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				g := got[i]
				if !g.Start.Equal(w.start) || !g.End.Equal(w.end) || g.Kind != w.kind || g.Status != "open" || g.RunID != "r2" ||
					g.Source != "s" || g.LocationID != "L" || g.Resource != "contacts" {
					t.Errorf("window %d = %+v, want [%v, %v) %s", i, g.Window, w.start, w.end, w.kind)
				}
				if !reflect.DeepEqual(g.After, w.after) {
					t.Errorf("window %d resumes after %#v, want %#v", i, g.After, w.after)
				}
			}
		})
	}
}

// A source clock behind ours dates a change before our previous run's
// start although that run could not see it: the lookback re-reads it. A
// source clock ahead dates changes in our future: a run window has no
// upper bound at query time, so they are read now.
func TestPlanCoversSkewedClocks(t *testing.T) {
	lb := 10 * time.Minute
	prev := time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
	now := prev.Add(time.Hour)
	st := &load.State{Watermarks: []load.Watermark{{Source: "s", LocationID: "L", Resource: "contacts", Value: prev.Add(-lb)}}}
	for _, skew := range []time.Duration{-9 * time.Minute, -2 * time.Minute, 2 * time.Minute, 3 * time.Hour} {
		wins, _, err := PlanWindows(st, load.Run{ID: "r", Source: "s", StartedAt: now}, "L", Options{Lookback: lb})
		if err != nil {
			t.Fatal(err)
		}
		dated := prev.Add(skew) // committed upstream just after the previous run started
		w := wins[len(wins)-1]
		q := windowQuery(extract.Query{PageLimit: 100}, w)
		if dated.Before(q.UpdatedSince) || (!q.UpdatedUntil.IsZero() && !dated.Before(q.UpdatedUntil)) {
			t.Errorf("skew %v: a change dated %v is outside [%v, %v)", skew, dated, q.UpdatedSince, q.UpdatedUntil)
		}
	}
	// A backfill window is bounded: it reads its range only.
	bw := &Window{Window: load.Window{Start: prev, End: now, Kind: KindBackfill}}
	if q := windowQuery(extract.Query{}, bw); !q.UpdatedUntil.Equal(now) {
		t.Errorf("backfill query until %v", q.UpdatedUntil)
	}
}

func TestPlanRejectsABadCursor(t *testing.T) {
	st := &load.State{Windows: []load.Window{{Source: "s", LocationID: "L", Resource: "contacts", Start: epoch,
		End: epoch.Add(time.Hour), Status: "open", Cursor: "{not json", Kind: KindRun}}}
	if _, _, err := PlanWindows(st, load.Run{ID: "r", Source: "s", StartedAt: epoch.Add(2 * time.Hour)}, "L", Options{}); err == nil {
		t.Fatal("a corrupt cursor was accepted")
	}
}

func jsonNumber(s string) any { return json.Number(s) }
