//go:build unix

package safefile

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestLock: a held lock refuses a second holder with ErrLocked, and is
// free again once released.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = Lock(path)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	unlock()
	if _, err := Lock(filepath.Join(t.TempDir(), "no", "dir")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("Lock in a missing directory: %v", err)
	}
}
