package auth

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable of the crash-test hook: when it
// equals one of the Point names, the process SIGKILLs itself on reaching
// that point of a refresh. Tests use it to prove the store survives a kill
// anywhere; it has no other use.
const CrashEnv = "CONTACTS_ETL_AUTH_CRASH_AT"

// Named points of a refresh, in order.
const (
	PointBeforeRequest = "before-request" // intent saved, refresh not sent
	PointAfterResponse = "after-response" // new pair received, not saved
	PointWriteTemp     = "write-temp"     // half of the temp file written
	PointBeforeRename  = "before-rename"  // temp file complete and synced
	PointAfterRename   = "after-rename"   // new pair durable, not yet used
)

var crashAt = os.Getenv(CrashEnv)

func crashPoint(name string) {
	if crashAt != "" && crashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
