//go:build unix

package safefile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned by Lock when another process holds the lock.
var ErrLocked = errors.New("lock file held by another process")

// Lock takes an exclusive, non-blocking flock on path (created 0600 if
// needed) and returns the function that releases it. The kernel drops the
// lock when the process dies, so a crash never leaves it held. Another
// holder is ErrLocked. A symbolic link at path is refused (O_NOFOLLOW):
// O_CREATE would create the link's target wherever it points.
func Lock(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f.Close, nil
}
