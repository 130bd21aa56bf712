//go:build !unix || darwin

package safefile

import "os"

// datasync is fsync where fdatasync(2) is not available (on darwin,
// os.File.Sync is F_FULLFSYNC, which is what durability needs there).
func datasync(f *os.File) error { return f.Sync() }
