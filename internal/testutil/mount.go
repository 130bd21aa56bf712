package testutil

// Real faults, not mocks (../shared/TESTING.md §5): a disk-full test runs on
// a small tmpfs that is really full, and a read-only test on a read-only
// bind mount, because that is what the code meets in production (ENOSPC
// from write or fsync, EROFS with files still open) and because chmod does
// not stop root. Both need root and mount(8): without them the test is
// skipped, unless EDGERELAY_REQUIRE_ROOT=1 (CI) makes that a failure, so
// that these tests cannot silently stop running there.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// required reports whether EDGERELAY_REQUIRE_ROOT=1 makes a missing
// privilege a failure instead of a skip.
func required() bool { return os.Getenv("EDGERELAY_REQUIRE_ROOT") == "1" }

// RequireRoot skips a fault test that needs root and mount(8), unless
// EDGERELAY_REQUIRE_ROOT=1 (CI) makes it fail instead. Tmpfs and ReadOnly
// call it themselves; a test calls it first when it has setup to spare.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("mount"); err == nil {
			return
		}
	}
	if required() {
		t.Fatal("this fault test needs root and mount(8) (EDGERELAY_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root and mount(8) for a real full or read-only file system; set EDGERELAY_REQUIRE_ROOT=1 to make this a failure")
}

// mount runs mount(8) with args. When mounting is refused (root without the
// capability, say), the test is skipped, or fails under
// EDGERELAY_REQUIRE_ROOT=1.
func mount(t testing.TB, what string, args ...string) {
	t.Helper()
	if err := run("mount", args...); err != nil {
		if required() {
			t.Fatalf("cannot mount %s: %v", what, err)
		}
		t.Skipf("cannot mount %s: %v", what, err)
	}
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Tmpfs mounts a tmpfs of the given size ("3m") on a new temporary
// directory, returns that directory, and unmounts it when the test ends,
// reporting an unmount that fails (a mount left behind). Fill makes it full.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	mount(t, "a tmpfs", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir)
	// Registered after t.TempDir's own cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := run("umount", dir); err != nil {
			t.Errorf("%v", err)
		}
	})
	return dir
}

// ReadOnly makes dir read-only with a read-only bind mount over it; files
// already open keep working, as when an operator or the kernel remounts a
// file system read-only. restore makes dir writable again (the test fails
// if it cannot); if the test does not call it, dir is restored when the
// test ends.
func ReadOnly(t testing.TB, dir string) (restore func()) {
	t.Helper()
	RequireRoot(t)
	mount(t, "a bind mount", "--bind", dir, dir)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			mounted = false
			if err := run("umount", dir); err != nil {
				t.Errorf("%v", err)
			}
		}
	})
	if err := run("mount", "-o", "remount,bind,ro", dir); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if mounted {
			mounted = false
			if err := run("umount", dir); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Fill writes a file at path until its file system is full, and fails the
// test if writing stopped for another reason than ENOSPC. Removing the
// file frees the space again.
func Fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the file system: %v, want ENOSPC", err)
			}
			return
		}
	}
}
