package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Commit makes the temporary file f durable under the name path:
// fsync f, close it, rename it to path (replacing what was there) and fsync
// the directory of path. f is closed and, on error, removed.
func Commit(fsys FS, ds *DirSyncer, f TempFile, path string) error {
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return ds.Sync(filepath.Dir(path))
}

// CommitNew is Commit for a name that must not exist yet: f gets
// the name path with a hard link, which fails (errors.Is(err, fs.ErrExist))
// when path exists, so it never replaces a file that another writer
// committed; then the temporary name is removed and the directory of path
// fsync'd. f is closed and its temporary name removed in every case.
// created reports whether path was created (by this call), so that a caller
// cleaning up after an error removes only what it made.
func CommitNew(fsys FS, ds *DirSyncer, f TempFile, path string) (created bool, err error) {
	tmp := f.Name()
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Link(tmp, path)
		created = err == nil
	}
	// The temporary name is not needed any more; one left by a crash is
	// removed at the next Open.
	fsys.Remove(tmp)
	if err != nil {
		return created, err
	}
	return true, ds.Sync(filepath.Dir(path))
}

// WriteFileAtomic replaces path with data: the data is written to a
// temporary file in tmpDir (which must be on the same file system as path),
// fsync'd, renamed over path, and the directory of path is fsync'd. Readers
// see either the old content or the new one, never a mix; after a crash the
// same holds. The rename is the commit point.
func WriteFileAtomic(fsys FS, ds *DirSyncer, tmpDir, path string, data []byte) error {
	f, err := WriteTemp(fsys, tmpDir, filepath.Base(path), data)
	if err != nil {
		return err
	}
	return Commit(fsys, ds, f, path)
}

// WriteTemp writes data to a new temporary file in tmpDir, named after name,
// and returns it open (not yet fsync'd). On error nothing is left.
func WriteTemp(fsys FS, tmpDir, name string, data []byte) (TempFile, error) {
	f, err := fsys.CreateTemp(tmpDir, name+".*.tmp")
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		fsys.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash (fsync of the file alone does not cover its name).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// DirSyncer batches directory fsyncs (group commit). One fsync of a
// directory makes durable every entry change made in it before the fsync
// started, so concurrent writers that each need "my rename is durable" can
// share one: a caller whose change came before a running fsync started
// waits for the next one, and every caller that arrived while that one ran
// is covered by the next single fsync. Under load this turns N directory
// fsyncs into a few, which is where a spool spends most of its time.
type DirSyncer struct {
	FS   FS // nil means OS
	mu   sync.Mutex
	dirs map[string]*dirSyncState
}

type dirSyncState struct {
	cond    *sync.Cond
	issued  uint64 // callers so far
	done    uint64 // every caller <= done was covered by a finished fsync
	running bool
	// next is the fsync that covers the changes made from now on: it has
	// not started yet (it starts once the running one ends).
	next *syncRound
}

// syncRound is one directory fsync and the callers it covers: each of
// them gets its outcome, however many fsyncs ran since (a failed fsync
// fails every change it was meant to make durable).
type syncRound struct {
	done bool
	err  error
}

// sync returns once a directory fsync that started after the caller's
// change has completed.
func (d *DirSyncer) Sync(dir string) error {
	if d == nil {
		return SyncDir(dir)
	}
	fsys := d.FS
	if fsys == nil {
		fsys = OS{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs = map[string]*dirSyncState{}
	}
	st := d.dirs[dir]
	if st == nil {
		st = &dirSyncState{cond: sync.NewCond(&d.mu)}
		d.dirs[dir] = st
	}
	st.issued++
	if st.next == nil {
		st.next = &syncRound{}
	}
	r := st.next
	for !r.done {
		if st.running {
			st.cond.Wait()
			continue
		}
		// r has not started (a round is taken off st.next only by the
		// leader that runs it to the end): lead it, for every caller so far.
		st.running = true
		st.next = nil
		target := st.issued
		d.mu.Unlock()
		err := fsys.SyncDir(dir)
		d.mu.Lock()
		st.running = false
		st.done = target
		r.done, r.err = true, err
		st.cond.Broadcast()
	}
	return r.err
}

// RemoveIfExists removes path; a missing file is not an error.
func RemoveIfExists(fsys FS, path string) error {
	if err := fsys.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// WriteNew writes r to a new file at path (it must not exist) with the
// permissions perm, fsyncs and closes it. On error nothing is left. The
// caller renames or links it into place and fsyncs that directory.
func WriteNew(path string, r io.Reader, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
