//go:build unix

package load

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockHolder reports whether another process holds a POSIX lock on path (as
// DuckDB does on its database file while it has it open), and its pid.
// Call it only while this process has not opened path through DuckDB: closing
// any descriptor of a file drops every POSIX lock the process holds on it.
func lockHolder(path string) (pid int, locked bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0, false
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false
	}
	return int(lk.Pid), true
}
