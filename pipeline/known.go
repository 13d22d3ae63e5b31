package pipeline

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/contacts-etl/contacts-etl/load"
)

// knownSet is the live contacts of a location with their updated_at in
// epoch ms, for the unchanged check: exact (ids compared in full) and
// without a pointer per contact, so it costs the id's bytes and 12 more
// (a map[string]int64 costs a string header, an allocation and the map's
// slots besides), and the garbage collector never scans it. Ids are
// concatenated in ascending byte order in one string; id i is
// arena[ends[i-1]:ends[i]]. Safe for concurrent reads.
type knownSet struct {
	arena string
	ends  []uint32
	ms    []int64
}

// conflictMs marks an id that came twice with different times: never
// unchanged.
const conflictMs = math.MinInt64

// errKnownTooLarge stops a set whose ids pass 4 GiB.
var errKnownTooLarge = errors.New("live contact ids exceed 4 GiB")

// readKnown builds the known set of a location from s.EachLiveContact,
// sorted here (the sinks yield their storage order).
func readKnown(ctx context.Context, s load.Store, source, location string) (*knownSet, error) {
	var b knownBuilder
	if err := s.EachLiveContact(ctx, source, location, b.add); err != nil {
		return nil, err
	}
	return b.set(), nil
}

// knownBuilder collects ids and times in the order they come, in
// fixed-size chunks: growing never copies what it holds, and set copies
// each chunk once into slices of the exact size, dropping it as it goes.
type knownBuilder struct {
	arena chunks[byte]
	ends  chunks[uint32]
	ms    chunks[int64]
}

func (b *knownBuilder) add(id string, ms int64) error {
	if uint64(b.arena.n)+uint64(len(id)) > math.MaxUint32 {
		return errKnownTooLarge
	}
	b.arena.append([]byte(id)...)
	b.ends.append(uint32(b.arena.n))
	b.ms.append(ms)
	return nil
}

// set returns the collected ids sorted, each once. The builder is empty
// afterwards.
func (b *knownBuilder) set() *knownSet {
	var arena strings.Builder
	arena.Grow(b.arena.n)
	b.arena.drain(func(p []byte) { arena.Write(p) })
	raw := &knownSet{arena: arena.String(), ends: b.ends.flatten(), ms: b.ms.flatten()}
	n := raw.len()
	order := make([]uint32, n)
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return strings.Compare(raw.id(int(x)), raw.id(int(y))) })
	at := func(i int) int { return int(order[i]) }
	// Count the distinct ids first, so that every slice is allocated once.
	distinct, size := 0, 0
	for i := range n {
		if i == 0 || raw.id(at(i)) != raw.id(at(i-1)) {
			distinct++
			size += len(raw.id(at(i)))
		}
	}
	arena = strings.Builder{}
	arena.Grow(size)
	out := &knownSet{ends: make([]uint32, 0, distinct), ms: make([]int64, 0, distinct)}
	for i := range n {
		id, ms := raw.id(at(i)), raw.ms[at(i)]
		if i > 0 && id == raw.id(at(i-1)) {
			if last := len(out.ms) - 1; out.ms[last] != ms {
				out.ms[last] = conflictMs
			}
			continue
		}
		arena.WriteString(id)
		out.ends = append(out.ends, uint32(arena.Len()))
		out.ms = append(out.ms, ms)
	}
	out.arena = arena.String()
	return out
}

// chunkLen is the length of a chunk of chunks.
const chunkLen = 16 << 10

// chunks is a slice grown in chunks of chunkLen elements.
type chunks[T any] struct {
	full [][]T
	cur  []T
	n    int
}

func (c *chunks[T]) append(v ...T) {
	for len(v) > 0 {
		if len(c.cur) == cap(c.cur) {
			if c.cur != nil {
				c.full = append(c.full, c.cur)
			}
			c.cur = make([]T, 0, chunkLen)
		}
		k := copy(c.cur[len(c.cur):cap(c.cur)], v)
		c.cur, v, c.n = c.cur[:len(c.cur)+k], v[k:], c.n+k
	}
}

// drain calls fn with each chunk in turn, dropping it afterwards, and
// leaves c empty.
func (c *chunks[T]) drain(fn func([]T)) {
	for i, p := range c.full {
		fn(p)
		c.full[i] = nil
	}
	fn(c.cur)
	*c = chunks[T]{}
}

// flatten returns the elements in one slice of their exact length, and
// leaves c empty.
func (c *chunks[T]) flatten() []T {
	out := make([]T, 0, c.n)
	c.drain(func(p []T) { out = append(out, p...) })
	return out
}

func (k *knownSet) len() int {
	if k == nil {
		return 0
	}
	return len(k.ends)
}

// id is the i-th id, a substring of the arena.
func (k *knownSet) id(i int) string {
	var start uint32
	if i > 0 {
		start = k.ends[i-1]
	}
	return k.arena[start:k.ends[i]]
}

// get returns the stored time of id, and whether id is known (with one
// time).
func (k *knownSet) get(id string) (int64, bool) {
	n := k.len()
	i := sort.Search(n, func(i int) bool { return k.id(i) >= id })
	if i == n || k.id(i) != id || k.ms[i] == conflictMs {
		return 0, false
	}
	return k.ms[i], true
}

// bytes is what the set holds, in bytes.
func (k *knownSet) bytes() int {
	if k == nil {
		return 0
	}
	return len(k.arena) + 4*cap(k.ends) + 8*cap(k.ms)
}

// unlisted returns the ids each yields that are not in listed, sorted and
// each once. It sorts listed in place and looks each yielded id up in it,
// so the answer does not depend on the order they come in (the sinks
// yield their storage order).
func unlisted(listed []string, each func(fn func(id string) error) error) ([]string, error) {
	slices.Sort(listed)
	var gone []string
	err := each(func(id string) error {
		if _, found := slices.BinarySearch(listed, id); !found {
			gone = append(gone, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(gone)
	return slices.Compact(gone), nil
}
