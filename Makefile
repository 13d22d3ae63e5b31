# contacts-etl — every target needs only Go (1.26+) and gcc (the DuckDB driver is cgo).
GO      ?= go
BIN     := bin/contacts-etl
PKGS    := ./...
# duckdb-go/v2 keeps its Arrow interface (zero-copy views, our staging path)
# behind this build tag; every go command of the Makefile (and .ci/run, which
# calls make) gets it from here. Run `go` by hand with the same GOFLAGS.
export GOFLAGS := -tags=duckdb_arrow
# duckdb-go/v2 links a prebuilt DuckDB static library: a cold build takes ~30-120 s.

.PHONY: all build demo test bench bench-go bench-webhook bench-json soak fuzz vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/contacts-etl

## demo: start the simulator in-process and export a few thousand contacts into ./warehouse.duckdb
demo: build
	./$(BIN) demo --warehouse warehouse.duckdb

## test: vet and the whole test suite (end to end against the simulator and real DuckDB files)
test:
	$(GO) vet $(PKGS)
	$(GO) test -timeout 30m $(PKGS)

## bench: the issue-10 table: exporter and simulator as separate processes; export ÷ raw fetch at 100k contacts,
## peak RSS at 50k/100k (children) and 50k/500k (contacts only), CPU per contact and per row, faults ÷ clean,
## first-run requests ÷ minimum (cmd/etlbench; 8-15 minutes on 2 shared cores, see BENCHMARKS.md). BENCH_FLAGS passes flags to it.
bench: build
	$(GO) run ./cmd/etlbench -bin $(BIN) $(BENCH_FLAGS)

## bench-go: the Go benchmarks: in-process export vs raw fetch, rate-limited export, loaders, request counts, webhooks
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./cmd/contacts-etl
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./load
	$(GO) test -run '^$$' -bench 'Requests' -benchtime 1x -timeout 10m ./pipeline
	$(MAKE) bench-webhook

## bench-webhook: events/s the receiver acknowledges durably, and mutation-to-commit latency (p50/p99) with apply every 5s
bench-webhook:
	$(GO) test -run '^$$' -bench 'AckDurable' -benchtime 5000x -timeout 5m ./webhook
	$(GO) test -run '^$$' -bench 'MutationToCommit' -benchtime 1x -timeout 5m ./webhook

## bench-json: JSON decoders (encoding/json, goccy/go-json, sonic, segmentio) against our splitter and record decoder, and their semantic checks (bench/jsoncmp, a module of its own)
# -tags on the command line replaces GOFLAGS' -tags: it names both. jsoncmp
# builds the hooks the comparison calls (extract/jsoncmp_hook.go, transform/jsoncmp_hook.go).
bench-json:
	cd bench/jsoncmp && $(GO) test -tags duckdb_arrow,jsoncmp -run 'Semantics|Same|Mutated' -v .
	cd bench/jsoncmp && $(GO) test -tags duckdb_arrow,jsoncmp -run '^$$' -bench . -count 6 -timeout 30m .

## fuzz: the decoders, a minute each
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzContact -fuzztime 60s ./transform
	$(GO) test -run '^$$' -fuzz FuzzPage -fuzztime 60s ./transform
	$(GO) test -run '^$$' -fuzz FuzzSplitValid -fuzztime 60s ./transform
	$(GO) test -run '^$$' -fuzz FuzzAppendCompact -fuzztime 60s ./transform
	$(GO) test -run '^$$' -fuzz FuzzDecodeString -fuzztime 60s ./transform
	$(GO) test -run '^$$' -fuzz FuzzSplitter -fuzztime 60s ./extract
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime 60s ./internal/jsonscan

## soak: long end-to-end and crash campaigns (200 kills of the exporter, 40 of the Parquet publisher, 200 Parquet commits)
soak:
	SOAK=1 $(GO) test -run 'Soak|Crash' -timeout 60m ./cmd/contacts-etl
	SOAK=1 $(GO) test -run 'SIGKILL|ManySmallCommits|Crash' -timeout 30m ./load ./push ./webhook

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin warehouse.duckdb warehouse.duckdb.wal warehouse.duckdb.lock warehouse.duckdb.inbox
