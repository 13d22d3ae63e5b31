package main

import (
	"os"
	"runtime/debug"
)

// exportMemoryLimit is the Go heap's soft limit in the commands that
// export (run, backfill), unless GOMEMLIMIT says otherwise. The pipeline
// holds about two commits' worth of Arrow data (pipeline.DefaultCommitBytes
// each) plus channel buffers; without a limit the collector lets the heap
// grow to twice its live size, and the process's peak RSS with it (issue
// 10, BENCHMARKS.md). A soft limit only makes the collector run sooner: a
// larger live heap still works, at more GC CPU.
const exportMemoryLimit = 100 << 20

// exportCommands are the commands whose process is the exporter alone
// (demo and the tests run the simulator in the same process).
var exportCommands = map[string]bool{"run": true, "backfill": true}

// limitMemory sets the soft limit for an export command.
func limitMemory(args []string) {
	if len(args) == 0 || !exportCommands[args[0]] || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(exportMemoryLimit)
}
