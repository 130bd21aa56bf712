package spool

import (
	"errors"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// lockSpool takes an exclusive, non-blocking flock on path, so that two
// processes never share one spool (their in-memory leases would let both
// deliver the same message). The kernel drops the lock when the process
// dies, so a crash never leaves the spool locked.
func lockSpool(path string) (unlock func() error, err error) {
	unlock, err = safefile.Lock(path)
	if errors.Is(err, safefile.ErrLocked) {
		return nil, errors.New("spool is in use by another process (lock file held)")
	}
	return unlock, err
}
