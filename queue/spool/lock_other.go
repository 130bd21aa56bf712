//go:build !unix

package spool

// lockSpool is a no-op where flock is not available: the operator must make
// sure that only one process opens a spool directory.
func lockSpool(path string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
