package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
)

// fakeLive is the EachLiveContact of a load.Store over a list, in the
// list's order (the other methods are not called).
type fakeLive struct {
	load.Store
	ids []string
	ms  []int64
}

func (f fakeLive) EachLiveContact(_ context.Context, _, _ string, fn func(string, int64) error) error {
	for i, id := range f.ids {
		if err := fn(id, f.ms[i]); err != nil {
			return err
		}
	}
	return nil
}

// oddIDs are ids whose byte order differs from any case- or accent-aware
// order, with the simulator's odd pieces.
func oddIDs() []string {
	ids := []string{"z", "a", "Z", "A", "é", "e", "ab", "a", "", "~", "0", "中", "😀", "a\x00b"}
	for i, p := range sim.OddIDPieces {
		ids = append(ids, fmt.Sprintf("Ab%d%s", i, p), p)
	}
	return ids
}

func TestKnownSet(t *testing.T) {
	ctx := context.Background()
	ids := slices.Compact(slices.Sorted(slices.Values(oddIDs())))
	ms := make([]int64, len(ids))
	for i := range ms {
		ms[i] = int64(i * 1000)
	}
	shuffled, sms := slices.Clone(ids), slices.Clone(ms)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		sms[i], sms[j] = sms[j], sms[i]
	})
	for name, f := range map[string]fakeLive{"sorted": {ids: ids, ms: ms}, "unsorted": {ids: shuffled, ms: sms}} {
		t.Run(name, func(t *testing.T) {
			k, err := readKnown(ctx, f, "s", "l")
			if err != nil {
				t.Fatal(err)
			}
			if k.len() != len(ids) {
				t.Fatalf("len %d, want %d", k.len(), len(ids))
			}
			for i, id := range ids {
				if got, ok := k.get(id); !ok || got != ms[i] {
					t.Errorf("get(%q) = %d, %v; want %d", id, got, ok, ms[i])
				}
				if k.id(i) != id {
					t.Errorf("id %d = %q, want %q (sorted)", i, k.id(i), id)
				}
				// Near misses: a prefix, an extension, another case.
				for _, miss := range []string{id + "x", id + "\x00", id[:max(len(id)-1, 0)] + "\xff"} {
					if _, ok := k.get(miss); ok && !slices.Contains(ids, miss) {
						t.Errorf("get(%q) found an id never stored", miss)
					}
				}
			}
			for _, miss := range []string{"b", "AB", "é✓x", "\xff", "zz"} {
				if _, ok := k.get(miss); ok {
					t.Errorf("get(%q) found an id never stored", miss)
				}
			}
			if n := testing.AllocsPerRun(100, func() { k.get(ids[len(ids)/2]) }); n != 0 {
				t.Errorf("get allocates %.0f times", n)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		k, err := readKnown(ctx, fakeLive{}, "s", "l")
		if err != nil || k.len() != 0 {
			t.Fatalf("%v, %v", k.len(), err)
		}
		if _, ok := k.get(""); ok {
			t.Error("empty set has \"\"")
		}
		var nilSet *knownSet
		if _, ok := nilSet.get("a"); ok || nilSet.len() != 0 {
			t.Error("nil set has a")
		}
	})
	t.Run("duplicates", func(t *testing.T) {
		// Twice with one time: known; with two: never unchanged.
		k, err := readKnown(ctx, fakeLive{ids: []string{"b", "a", "b", "c", "c"}, ms: []int64{1, 2, 1, 3, 4}}, "s", "l")
		if err != nil {
			t.Fatal(err)
		}
		if ms, ok := k.get("b"); !ok || ms != 1 || k.len() != 3 {
			t.Errorf("b = %d, %v; len %d", ms, ok, k.len())
		}
		if _, ok := k.get("c"); ok {
			t.Error("c with two times is known")
		}
		if !reflect.DeepEqual([]string{k.id(0), k.id(1), k.id(2)}, []string{"a", "b", "c"}) {
			t.Error("not sorted")
		}
	})
	t.Run("unchanged", func(t *testing.T) {
		k, err := readKnown(ctx, fakeLive{ids: []string{"a/b", "c"}, ms: []int64{1764003536678, 0}}, "s", "l")
		if err != nil {
			t.Fatal(err)
		}
		u := unchanged(k)
		for _, c := range []struct {
			id, date string
			want     bool
		}{
			{"a/b", "2025-11-24T16:58:56.678Z", true},
			{"a/b", "2025-11-24T16:58:56.679Z", false},
			{"a/b", "", false},
			{"c", "", false},
			// Stored 0 is an unknown updated_at, not the epoch.
			{"c", "1970-01-01T00:00:00Z", false},
			{"d", "2025-11-24T16:58:56.678Z", false},
		} {
			if got := u(c.id, c.date); got != c.want {
				t.Errorf("unchanged(%q, %q) = %v", c.id, c.date, got)
			}
		}
		if unchanged(nil) != nil {
			t.Error("unchanged(nil) checks")
		}
	})
}

func TestUnlisted(t *testing.T) {
	stored := slices.Compact(slices.Sorted(slices.Values(oddIDs())))
	var listed, want []string
	for i, id := range stored {
		if i%3 == 0 {
			want = append(want, id)
		} else {
			listed = append(listed, id)
		}
	}
	listed = append(listed, "listed-only", "Listed-only-é")
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
	reversed := slices.Clone(stored)
	slices.Reverse(reversed)
	for name, ids := range map[string][]string{"ordered": stored, "reversed": reversed,
		"duplicates": append(slices.Clone(stored[:2]), stored...), "late dup": append(slices.Clone(stored), stored[0])} {
		t.Run(name, func(t *testing.T) {
			got, err := unlisted(slices.Clone(listed), func(fn func(string) error) error {
				for _, id := range ids {
					if err := fn(id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("unlisted = %q, %v\nwant %q", got, err, want)
			}
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		got, err := unlisted(listed, func(func(string) error) error { return nil })
		if err != nil || len(got) != 0 {
			t.Errorf("%q, %v", got, err)
		}
	})
	t.Run("nothing listed", func(t *testing.T) {
		got, err := unlisted(nil, func(fn func(string) error) error { return errors.Join(fn("b"), fn("a")) })
		if err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
			t.Errorf("%q, %v", got, err)
		}
	})
	t.Run("error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := unlisted(nil, func(func(string) error) error { return boom }); !errors.Is(err, boom) {
			t.Errorf("err %v", err)
		}
	})
}

// benchIDs are n ids as the simulator makes them (20 base62 characters),
// sorted, with their times.
func benchIDs(n int) ([]string, []int64) {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	r := rand.New(rand.NewPCG(5, 6))
	ids, ms := make([]string, n), make([]int64, n)
	var b [20]byte
	for i := range ids {
		for j := range b {
			b[j] = base62[r.IntN(62)]
		}
		ids[i], ms[i] = string(b[:]), 1_700_000_000_000+r.Int64N(1e10)
	}
	slices.Sort(ids)
	return ids, ms
}

// heapAfter returns the live heap after build, less the live heap
// before, with what build returned still reachable, and the bytes
// allocated while building.
func heapAfter(build func() any) (live, allocated int64, keep any) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	keep = build()
	runtime.GC()
	runtime.ReadMemStats(&b)
	return int64(b.HeapAlloc) - int64(a.HeapAlloc), int64(b.TotalAlloc - a.TotalAlloc), keep
}

// BenchmarkKnownMemory compares, for 500k contacts as the warehouse
// streams them (in no order of id, a new string per id, as database/sql
// scans it), the bytes per contact of the map the unchanged check used
// and of the known set: kept (live heap after GC) and allocated while
// building.
func BenchmarkKnownMemory(b *testing.B) {
	const n = 500_000
	ids, ms := benchIDs(n)
	rand.New(rand.NewPCG(7, 8)).Shuffle(n, func(i, j int) { ids[i], ids[j], ms[i], ms[j] = ids[j], ids[i], ms[j], ms[i] })
	// Each id as a fresh string, as a scan returns it.
	stream := func(fn func(string, int64) error) {
		buf := make([]byte, 0, 32)
		for i, id := range ids {
			buf = append(buf[:0], id...)
			if err := fn(string(buf), ms[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range b.N {
		mapLive, mapAlloc, m := heapAfter(func() any {
			out := map[string]int64{}
			stream(func(id string, v int64) error { out[id] = v; return nil })
			return out
		})
		setLive, setAlloc, k := heapAfter(func() any {
			var kb knownBuilder
			stream(kb.add)
			return kb.set()
		})
		if len(m.(map[string]int64)) != n || k.(*knownSet).len() != n {
			b.Fatal("wrong size")
		}
		b.ReportMetric(float64(mapLive)/n, "map-B/contact")
		b.ReportMetric(float64(setLive)/n, "set-B/contact")
		b.ReportMetric(float64(mapAlloc)/n, "map-alloc-B/contact")
		b.ReportMetric(float64(setAlloc)/n, "set-alloc-B/contact")
		b.ReportMetric(float64(k.(*knownSet).bytes())/n, "set-held-B/contact")
		runtime.KeepAlive(m)
		runtime.KeepAlive(k)
	}
}

// BenchmarkKnownLookup times a hit in the set and in the map.
func BenchmarkKnownLookup(b *testing.B) {
	ids, ms := benchIDs(500_000)
	m := make(map[string]int64, len(ids))
	var kb knownBuilder
	for i, id := range ids {
		m[id] = ms[i]
		if err := kb.add(id, ms[i]); err != nil {
			b.Fatal(err)
		}
	}
	k := kb.set()
	b.Run("set", func(b *testing.B) {
		for i := range b.N {
			if _, ok := k.get(ids[i%len(ids)]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for i := range b.N {
			if _, ok := m[ids[i%len(ids)]]; !ok {
				b.Fatal("miss")
			}
		}
	})
}
