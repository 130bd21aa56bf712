//go:build !unix

package safefile

import "errors"

// ErrLocked is returned by Lock when another process holds the lock.
var ErrLocked = errors.New("lock file held by another process")

// Lock is a no-op where flock is not available: the operator must make
// sure that only one process uses what it guards.
func Lock(path string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
