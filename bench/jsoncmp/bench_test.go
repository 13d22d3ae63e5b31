package jsoncmp

import (
	"testing"
)

// On a shared machine wall time per op moves with other people's load;
// cpuLoop runs body under b.Loop and also reports cpu-ns/op, the
// process's CPU time (getrusage; the collector's too) per op.
func cpuLoop(b *testing.B, body func()) {
	b.ReportAllocs()
	start := cpuNanos()
	n := 0
	for b.Loop() {
		body()
		n++
	}
	b.ReportMetric(float64(cpuNanos()-start)/float64(n), "cpu-ns/op")
}

// BenchmarkSearchPage reads a 500-contact search page as the paginator
// does: the contacts (raw), each one's id and dateUpdated, the last
// searchAfter. One op is one page.
func BenchmarkSearchPage(b *testing.B) {
	in := simInputs(b)
	for _, name := range decoders() {
		read := pageReader(name)
		_, _ = read(in.page) // sonic compiles a decoder per type on first use
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in.page)))
			cpuLoop(b, func() {
				p, err := read(in.page)
				if err != nil || len(p.items) != 500 || p.ids[499] == "" || p.updated[499] == "" || p.after == nil {
					b.Fatalf("err %v, %d contacts", err, len(p.items))
				}
			})
		})
	}
}

// BenchmarkChildren splits the tasks, notes and appointments answers of
// 50 contacts into records; one op is one answer (in turn).
func BenchmarkChildren(b *testing.B) {
	in := simInputs(b)
	for _, name := range decoders() {
		read := childReader(name)
		for _, c := range in.children[:3] {
			_, _ = read(c.body, c.res)
		}
		b.Run(name, func(b *testing.B) {
			i := 0
			cpuLoop(b, func() {
				c := in.children[i%len(in.children)]
				i++
				if _, err := read(c.body, c.res); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkContact decodes one contact (in turn, of the page's 500) into
// the fields the contacts mapping reads; one op is one contact.
func BenchmarkContact(b *testing.B) {
	in := simInputs(b)
	for _, name := range decoders() {
		dec, err := contactDecoder(name)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = dec(in.contacts[0])
		b.Run(name, func(b *testing.B) {
			i := 0
			cpuLoop(b, func() {
				if id, err := dec(in.contacts[i%len(in.contacts)]); err != nil || id == "" {
					b.Fatalf("id %q, err %v", id, err)
				}
				i++
			})
		})
	}
}
