package safefile

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// failSyncFS is OS whose directory fsyncs fail from the start.
type failSyncFS struct {
	OS
	n atomic.Int64
}

var errDirSync = errors.New("fsync directory: input/output error")

func (f *failSyncFS) SyncDir(string) error {
	f.n.Add(1)
	runtime.Gosched()
	return errDirSync
}

// TestDirSyncerFailsEveryCoveredCaller: while every directory fsync fails,
// no caller of DirSyncer.Sync may be told its change is durable, however
// many fsyncs fail while it waits to see the outcome of the one that
// covered it (the history of failures kept was cut at 64: a caller slow to
// wake after 64 more failed fsyncs got nil, and the spool answered 250 for
// a link that was never made durable).
func TestDirSyncerFailsEveryCoveredCaller(t *testing.T) {
	fsys := &failSyncFS{}
	ds := DirSyncer{FS: fsys}
	dir := t.TempDir()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if ds.Sync(dir) == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n > 0 {
		t.Fatalf("%d of 40000 Sync calls returned nil while every directory fsync (%d) failed", n, fsys.n.Load())
	}
}
