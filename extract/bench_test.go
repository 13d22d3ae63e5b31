package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// benchClient is a client of the simulator over loopback built as the
// exporter builds it: auth.Transport over a pooled http.Transport, a rate
// governor (the simulator announces no limit), and the ids of its first
// contacts.
func benchClient(b *testing.B, contacts int) (*Client, []string) {
	b.Helper()
	cfg := sim.Config{Seed: 21, Contacts: contacts,
		StaticTokens: map[string]sim.StaticToken{testToken: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}}
	srv := sim.New(cfg)
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	tr := &http.Transport{MaxIdleConns: 32, MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: auth.NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testToken}), tr),
		Timeout: DefaultTimeout}
	c, err := NewClient(base, "loc-0001", hc, WithGovernor(NewRateGovernor(1_000_000, 10*time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for _, t := range srv.Truth("loc-0001") {
		ids = append(ids, t.Contact.ID)
	}
	return c, ids
}

// simBody is the body of one answer of the simulator.
func simBody(b *testing.B, c *Client, method, path string, body any) []byte {
	b.Helper()
	out, err := c.do(context.Background(), method, path, nil, body)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkSplitSearchPage splits a 500-contact page of the simulator:
// encoding/json as before (the page, then each contact into pageKey)
// against the one-pass splitter.
func BenchmarkSplitSearchPage(b *testing.B) {
	c, _ := benchClient(b, 1000)
	body := simBody(b, c, http.MethodPost, "/contacts/search", searchRequest("loc-0001", Query{PageLimit: MaxPageLimit}))
	for _, impl := range []struct {
		name  string
		split func([]byte) (splitter, error)
	}{{"encoding_json", decodePage}, {"splitter", func(b []byte) (splitter, error) { return readPage(b, MaxPageLimit) }}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				sp, err := impl.split(body)
				if err != nil || len(sp.items) != MaxPageLimit || sp.ids[MaxPageLimit-1] == "" {
					b.Fatalf("err %v, %d contacts", err, len(sp.items))
				}
			}
		})
	}
}

// BenchmarkSplitChildren splits the tasks, notes and appointments answers
// of 50 contacts of the simulator (one answer per op): encoding/json as
// before against the splitter.
func BenchmarkSplitChildren(b *testing.B) {
	c, ids := benchClient(b, 50)
	type answer struct {
		res  string
		body []byte
	}
	var answers []answer
	for _, id := range ids {
		for _, res := range ChildResources {
			answers = append(answers, answer{res, simBody(b, c, http.MethodGet, "/contacts/"+id+"/"+res, nil)})
		}
	}
	for _, impl := range []struct {
		name  string
		split func([]byte, string) ([]json.RawMessage, error)
	}{{"encoding_json", decodeChildren}, {"splitter", splitChildren}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				a := answers[i%len(answers)]
				i++
				if _, err := impl.split(a.body, a.res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChildren reads the child lists of contacts from the simulator
// over loopback, one request per op, through the whole client (auth
// transport, governor, retries, body read, split). The simulator runs in
// the same process: its work is in the numbers too.
func BenchmarkChildren(b *testing.B) {
	c, ids := benchClient(b, 200)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id, res := ids[(i/3)%len(ids)], ChildResources[i%3]
		i++
		if _, _, problem, err := c.Children(ctx, id, res); err != nil || problem != "" {
			b.Fatalf("err %v problem %q", err, problem)
		}
	}
}

// BenchmarkSearchPage reads 100-contact search pages from the simulator
// over loopback, one request per op, through the whole client.
func BenchmarkSearchPage(b *testing.B) {
	c, _ := benchClient(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := c.searchPage(ctx, searchRequest("loc-0001", Query{PageLimit: 100}), 1)
		if err != nil || len(p.Contacts) != 100 {
			b.Fatalf("err %v, %d contacts", err, len(p.Contacts))
		}
	}
}

// BenchmarkBulkKeys reads the id and contactId of the tasks and
// appointments of 50 contacts of the simulator (one record per op):
// encoding/json as bulkRecord did against bulkKeys.
func BenchmarkBulkKeys(b *testing.B) {
	c, ids := benchClient(b, 50)
	var recs []json.RawMessage
	for _, id := range ids {
		for _, res := range []string{api.ResourceTasks, api.ResourceAppointments} {
			items, err := splitChildren(simBody(b, c, http.MethodGet, "/contacts/"+id+"/"+res, nil), res)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, items...)
		}
	}
	if len(recs) == 0 {
		b.Fatal("no records")
	}
	for _, impl := range []struct {
		name string
		keys func([]byte) (string, string)
	}{{"encoding_json", bulkKeysJSON}, {"splitter", bulkKeys}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if id, _ := impl.keys(recs[i%len(recs)]); id == "" {
					b.Fatal("no id")
				}
				i++
			}
		})
	}
}

// BenchmarkReadBody reads a body of unknown length (a chunked or
// decompressed answer) as a search page of 500 contacts is long, in reads
// of 4 KiB: io.ReadAll as before against readBody's pooled buffer.
func BenchmarkReadBody(b *testing.B) {
	body := bytes.Repeat([]byte(`{"id":"x","dateUpdated":"2024-01-01T00:00:00.000Z"},`), 9000)
	for _, impl := range []struct {
		name string
		read func(io.Reader) ([]byte, error)
	}{
		{"io.ReadAll", func(r io.Reader) ([]byte, error) { return io.ReadAll(io.LimitReader(r, DefaultMaxBody+1)) }},
		{"readBody", func(r io.Reader) ([]byte, error) { return readBody(r, -1, DefaultMaxBody) }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				got, err := impl.read(&chunkReader{body: body, n: 4096})
				if err != nil || len(got) != len(body) {
					b.Fatalf("%d bytes, err %v", len(got), err)
				}
			}
		})
	}
}

// chunkReader reads body at most n bytes at a time.
type chunkReader struct {
	body []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.body) == 0 {
		return 0, io.EOF
	}
	m := copy(p[:min(len(p), r.n)], r.body)
	r.body = r.body[m:]
	return m, nil
}

// memTransport answers every request with body, in memory.
type memTransport struct{ body []byte }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": hdrJSON},
		ContentLength: int64(len(m.body)), Body: io.NopCloser(bytes.NewReader(m.body)), Request: r}, nil
}

// BenchmarkClientOverhead is the client's own cost of one call, the
// network and the server left out: an answer from memory through
// auth.Transport and an http.Client built as the exporter builds it
// (Timeout: DefaultTimeout), with the governor, retries, the per-request
// timeout and the body read.
func BenchmarkClientOverhead(b *testing.B) {
	hc := &http.Client{Transport: auth.NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testToken}),
		memTransport{[]byte(`{"tasks":[{"id":"t1","title":"x"}]}`)}), Timeout: DefaultTimeout}
	c, err := NewClient("http://127.0.0.1:1", "loc-0001", hc, WithGovernor(NewRateGovernor(1_000_000_000, 10*time.Second)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.do(ctx, http.MethodGet, "/contacts/c1/tasks", nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
