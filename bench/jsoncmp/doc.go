// Package jsoncmp measures JSON decoders on the exporter's hot paths
// (issue 10): encoding/json, github.com/goccy/go-json,
// github.com/bytedance/sonic and github.com/segmentio/encoding/json against
// our own splitter (extract) and record decoder (transform), on the same
// simulator bytes, and checks the decoding rules our data depends on
// (invalid UTF-8, duplicate keys, key case, malformed text). It is a
// module of its own so that none of them is a dependency of the exporter;
// it builds with the jsoncmp tag, which exposes the splitter and the
// record decoder (extract/jsoncmp_hook.go, transform/jsoncmp_hook.go).
// Run it with make bench-json.
package jsoncmp
