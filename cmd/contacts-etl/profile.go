package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling, for the benchmark harness (cmd/etlbench) and for anyone
// chasing a slow run: CONTACTS_ETL_CPUPROFILE names a file that receives a
// CPU profile of the whole command, CONTACTS_ETL_MEMPROFILE one that
// receives an allocation profile (every allocation since start) at exit.
const (
	envCPUProfile = "CONTACTS_ETL_CPUPROFILE"
	envMemProfile = "CONTACTS_ETL_MEMPROFILE"
)

// startProfiles starts what the environment asks for; the returned func
// writes and closes the profiles. Failures are reported on w, never fatal.
func startProfiles(w io.Writer) func() {
	var cpu *os.File
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(w, "contacts-etl: cpu profile: %v\n", err)
		} else {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if path := os.Getenv(envMemProfile); path != "" {
			f, err := os.Create(path)
			if err == nil {
				runtime.GC()
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(w, "contacts-etl: memory profile: %v\n", err)
			}
		}
	}
}
