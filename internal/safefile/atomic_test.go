package safefile

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestDirSyncerGroupCommit: many concurrent callers all return only after
// an fsync that started after their change, and share fsyncs.
func TestDirSyncerGroupCommit(t *testing.T) {
	dir := t.TempDir()
	var ds DirSyncer
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('0'+i/26))), nil, 0o600); err != nil {
				t.Error(err)
			}
			if err := ds.Sync(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := ds.dirs[dir]
	if st.done != st.issued || st.issued != 64 {
		t.Fatalf("issued %d, done %d", st.issued, st.done)
	}
}

// TestDirSyncerError: a failed fsync is reported to the callers it
// covered, and not to later ones.
func TestDirSyncerError(t *testing.T) {
	var ds DirSyncer
	missing := filepath.Join(t.TempDir(), "gone")
	if err := ds.Sync(missing); err == nil {
		t.Fatal("fsync of a missing directory succeeded")
	}
	os.Mkdir(missing, 0o700)
	if err := ds.Sync(missing); err != nil {
		t.Fatalf("a later fsync inherited the old error: %v", err)
	}
}
