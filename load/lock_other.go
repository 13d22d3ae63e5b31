//go:build !unix

package load

// lockHolder cannot tell a held lock on this platform: open errors are final.
func lockHolder(string) (int, bool) { return 0, false }
