package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// faultFS is a safefile.FS for tests that stops at its k-th mutating
// operation, in one of two ways:
//
//   - crash (power loss): operation k fails with errPowerLost and so does
//     every later operation, reads included, as if the machine had died.
//     powerLoss() then undoes what a real power loss may undo: every
//     directory change (create, link, rename, remove) not yet covered by an
//     fsync of its directory, and the data written to files since their
//     last fsync (the file is cut back to its last fsync'd length; a file
//     never fsync'd comes back empty). Leaving some of them in place would
//     also be a legal outcome; undoing all of them is the harshest one.
//   - fault: operation k alone fails with EIO; the others work. This tries
//     every error path of the spool.
//
// Mutating operations are CreateTemp, Write, Sync, Close, Rename, Link,
// Remove, RemoveAll, MkdirAll and SyncDir; reads are not counted.
type faultFS struct {
	real    safefile.OS
	backup  string // a directory on the same file system for undo copies
	mu      sync.Mutex
	at      int  // the operation that fails (1-based); 0: none
	crash   bool // crash mode (else fault mode)
	ops     int
	dead    bool
	undo    []undoRec
	files   map[string]*fileRec // by current name
	nbackup int
}

var errPowerLost = errors.New("faultFS: power lost")

type undoRec struct {
	dir  string // an fsync of this directory makes the change durable
	undo func()
}

type fileRec struct {
	size, synced int64
}

func newFaultFS(backup string) *faultFS {
	return &faultFS{backup: backup, files: map[string]*fileRec{}}
}

// arm makes operation k (counted from now) fail; earlier changes are taken
// as durable.
func (f *faultFS) arm(k int, crash bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at, f.crash, f.ops, f.dead = k, crash, 0, false
	f.undo = nil
	for _, r := range f.files {
		r.synced = r.size
	}
}

// count counts one mutating operation and says whether it must fail.
func (f *faultFS) count(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errPowerLost
	}
	f.ops++
	if f.ops != f.at {
		return nil
	}
	if f.crash {
		f.dead = true
		return fmt.Errorf("%s: %w", what, errPowerLost)
	}
	return &fs.PathError{Op: what, Path: "(fault)", Err: syscall.EIO}
}

// alive fails reads after a crash.
func (f *faultFS) alive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errPowerLost
	}
	return nil
}

// fired reports whether the armed operation was reached.
func (f *faultFS) fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at > 0 && f.ops >= f.at
}

func (f *faultFS) record(dir string, undo func()) {
	f.mu.Lock()
	f.undo = append(f.undo, undoRec{dir: filepath.Clean(dir), undo: undo})
	f.mu.Unlock()
}

// save keeps a copy (a hard link) of path so that its removal or
// replacement can be undone; "" when path does not exist.
func (f *faultFS) save(path string) string {
	f.mu.Lock()
	f.nbackup++
	b := filepath.Join(f.backup, fmt.Sprint(f.nbackup))
	f.mu.Unlock()
	if err := os.Link(path, b); err != nil {
		return ""
	}
	return b
}

// powerLoss undoes what was not made durable, newest first.
func (f *faultFS) powerLoss() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, r := range f.files {
		if r.synced < r.size {
			os.Truncate(name, r.synced)
		}
	}
	for i := len(f.undo) - 1; i >= 0; i-- {
		f.undo[i].undo()
	}
	f.undo = nil
	f.files = map[string]*fileRec{}
}

func (f *faultFS) MkdirAll(dir string) error {
	if err := f.count("mkdir"); err != nil {
		return err
	}
	return f.real.MkdirAll(dir)
}

func (f *faultFS) CreateTemp(dir, pattern string) (safefile.TempFile, error) {
	if err := f.count("create"); err != nil {
		return nil, err
	}
	tf, err := f.real.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	name := tf.Name()
	r := &fileRec{}
	f.mu.Lock()
	f.files[name] = r
	f.mu.Unlock()
	f.record(dir, func() { os.Remove(name) })
	return &faultFile{fs: f, f: tf, rec: r}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.count("rename"); err != nil {
		return err
	}
	prev := f.save(newpath)
	if err := f.real.Rename(oldpath, newpath); err != nil {
		if prev != "" {
			os.Remove(prev)
		}
		return err
	}
	f.mu.Lock()
	if r := f.files[oldpath]; r != nil {
		delete(f.files, oldpath)
		f.files[newpath] = r
	}
	f.mu.Unlock()
	f.record(filepath.Dir(newpath), func() {
		os.Rename(newpath, oldpath)
		if prev != "" {
			os.Rename(prev, newpath)
		}
	})
	return nil
}

func (f *faultFS) Link(oldpath, newpath string) error {
	if err := f.count("link"); err != nil {
		return err
	}
	if err := f.real.Link(oldpath, newpath); err != nil {
		return err
	}
	f.mu.Lock()
	if r := f.files[oldpath]; r != nil {
		f.files[newpath] = r
	}
	f.mu.Unlock()
	f.record(filepath.Dir(newpath), func() { os.Remove(newpath) })
	return nil
}

func (f *faultFS) Remove(path string) error {
	if err := f.count("remove"); err != nil {
		return err
	}
	prev := f.save(path)
	if err := f.real.Remove(path); err != nil {
		if prev != "" {
			os.Remove(prev)
		}
		return err
	}
	f.mu.Lock()
	r := f.files[path]
	delete(f.files, path)
	f.mu.Unlock()
	if prev != "" {
		f.record(filepath.Dir(path), func() {
			os.Rename(prev, path)
			if r != nil {
				f.files[path] = r // under f.mu: undo runs in powerLoss
			}
		})
	}
	return nil
}

func (f *faultFS) RemoveAll(path string) error {
	if err := f.count("removeall"); err != nil {
		return err
	}
	return f.real.RemoveAll(path)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.count("syncdir"); err != nil {
		return err
	}
	if err := f.real.SyncDir(dir); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	f.mu.Lock()
	kept := f.undo[:0]
	for _, u := range f.undo {
		if u.dir != dir {
			kept = append(kept, u)
		}
	}
	f.undo = kept
	f.mu.Unlock()
	return nil
}

func (f *faultFS) ReadFile(path string) ([]byte, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	return f.real.ReadFile(path)
}

func (f *faultFS) Open(path string) (io.ReadCloser, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	return f.real.Open(path)
}

func (f *faultFS) ReadDirNames(dir string) ([]string, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	return f.real.ReadDirNames(dir)
}

func (f *faultFS) Lstat(path string) (fs.FileInfo, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	return f.real.Lstat(path)
}

// faultFile counts writes, syncs and the close, and tracks how much of the
// file is durable.
type faultFile struct {
	fs  *faultFS
	f   safefile.TempFile
	rec *fileRec
}

func (w *faultFile) Name() string { return w.f.Name() }

func (w *faultFile) Write(p []byte) (int, error) {
	if err := w.fs.count("write"); err != nil {
		return 0, err
	}
	n, err := w.f.Write(p)
	w.fs.mu.Lock()
	w.rec.size += int64(n)
	w.fs.mu.Unlock()
	return n, err
}

func (w *faultFile) Sync() error {
	if err := w.fs.count("sync"); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.fs.mu.Lock()
	w.rec.synced = w.rec.size
	w.fs.mu.Unlock()
	return nil
}

func (w *faultFile) Close() error {
	if err := w.fs.count("close"); err != nil {
		w.f.Close() // the descriptor goes with the process
		return err
	}
	return w.f.Close()
}
