//go:build !unix

package jsoncmp

// cpuNanos is 0 where getrusage is missing: cpu-ns/op reads 0.
func cpuNanos() int64 { return 0 }
