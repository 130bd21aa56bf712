//go:build unix

package safefile

import (
	"errors"
	"os"
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

// TestAttackLockSymlink: a symbolic link planted where the lock file goes
// (RELAY_DATA_DIR/admin.sock.lock, the spool's lock) is refused, and
// nothing is created or opened through it: O_CREATE followed a dangling
// link and created its target (mode 0600, owned by the relay, root in
// many containers) wherever the link pointed.
func TestAttackLockSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "planted")
	path := filepath.Join(dir, "admin.sock.lock")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if unlock, err := Lock(path); err == nil {
		unlock()
		t.Fatal("Lock through a symbolic link succeeded")
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the link's target was created: %v", err)
	}
}
