package spool

import (
	"errors"
	"fmt"
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
// Mutating operations are CreateTemp, Create, Write, WriteAt, Sync,
// Datasync, Truncate, Close (of a file being written), Rename, Link,
// Remove, RemoveAll, MkdirAll and SyncDir; reads (ReadFile, Open, OpenRW, ReadAt, Read,
// ReadDirNames, Lstat) are not counted, and fail after a crash.
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
	recs    []*fileRec          // every file tracked, for powerLoss
	nbackup int
}

var errPowerLost = errors.New("faultFS: power lost")

type undoRec struct {
	dir  string // an fsync of this directory makes the change durable
	undo func()
}

// fileRec is what the disk holds of one file (an inode, whatever its
// names): its length, the length that is durable, and the old bytes of
// writes in place not yet made durable (newest last).
type fileRec struct {
	size, synced int64
	patches      []patch
	fd           *os.File // a descriptor of the inode, to undo through
}

type patch struct {
	off int64
	old []byte
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
	for _, r := range f.recs {
		r.synced = r.size
		r.patches = nil
	}
}

// count counts one mutating operation and says whether it must fail.
func (f *faultFS) count(what string) error {
	_, err := f.countTorn(what)
	return err
}

// countTorn is count that also says whether the operation is the one the
// power is cut in (crash mode), for a write that is torn then.
func (f *faultFS) countTorn(what string) (torn bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return false, errPowerLost
	}
	f.ops++
	if f.ops != f.at {
		return false, nil
	}
	if f.crash {
		f.dead = true
		return true, fmt.Errorf("%s: %w", what, errPowerLost)
	}
	return false, &fs.PathError{Op: what, Path: "(fault)", Err: syscall.EIO}
}

// track returns the record of the file at path (an inode), making one for
// a file the faultFS did not create: all of it durable.
func (f *faultFS) track(path string, size int64) (*fileRec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.files[path]; r != nil {
		return r, nil
	}
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	r := &fileRec{size: size, synced: size, fd: fd}
	f.files[path] = r
	f.recs = append(f.recs, r)
	return r, nil
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

// powerLoss undoes what was not made durable, newest first: the data of
// every file (through a descriptor of its inode, whatever its names are
// now), then the directory changes.
func (f *faultFS) powerLoss() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.recs {
		for i := len(r.patches) - 1; i >= 0; i-- {
			r.fd.WriteAt(r.patches[i].old, r.patches[i].off)
		}
		if r.synced < r.size {
			r.fd.Truncate(r.synced)
		}
		r.fd.Close()
	}
	for i := len(f.undo) - 1; i >= 0; i-- {
		f.undo[i].undo()
	}
	f.undo = nil
	f.files = map[string]*fileRec{}
	f.recs = nil
}

// closeAll closes the descriptors kept for undo (a run that ends without
// a power loss).
func (f *faultFS) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.recs {
		r.fd.Close()
	}
	f.files = map[string]*fileRec{}
	f.recs = nil
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
	fd, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		tf.Close()
		return nil, err
	}
	r := &fileRec{fd: fd}
	f.mu.Lock()
	f.files[name] = r
	f.recs = append(f.recs, r)
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

func (f *faultFS) Open(path string) (safefile.File, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	rf, err := f.real.Open(path)
	if err != nil {
		return nil, err
	}
	return &faultOpenFile{fs: f, f: rf}, nil
}

func (f *faultFS) OpenRW(path string) (safefile.File, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	rf, err := f.real.OpenRW(path)
	if err != nil {
		return nil, err
	}
	size, err := rf.Size()
	if err == nil {
		var r *fileRec
		if r, err = f.track(path, size); err == nil {
			return &faultOpenFile{fs: f, f: rf, rec: r}, nil
		}
	}
	rf.Close()
	return nil, err
}

// Create creates a new file (a journal segment): the creation is undone by
// a power loss until its directory is fsync'd, its data until Datasync.
func (f *faultFS) Create(path string) (safefile.File, error) {
	if err := f.count("create"); err != nil {
		return nil, err
	}
	rf, err := f.real.Create(path)
	if err != nil {
		return nil, err
	}
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		rf.Close()
		return nil, err
	}
	r := &fileRec{fd: fd}
	f.mu.Lock()
	f.files[path] = r
	f.recs = append(f.recs, r)
	f.mu.Unlock()
	f.record(filepath.Dir(path), func() { os.Remove(path) })
	return &faultOpenFile{fs: f, f: rf, rec: r}, nil
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

func (w *faultFile) WriteAt(p []byte, off int64) (int, error) {
	return writeAt(w.fs, w.rec, w.f.WriteAt, p, off)
}

// writeAt writes p at off in the file of rec with wr, keeping the bytes it
// replaces over durable data for powerLoss; the write the power is cut in
// is torn (half of it reaches the disk, durably).
func writeAt(f *faultFS, rec *fileRec, wr func([]byte, int64) (int, error), p []byte, off int64) (int, error) {
	torn, err := f.countTorn("writeat")
	if err != nil {
		if torn {
			wr(p[:len(p)/2], off)
		}
		return 0, err
	}
	f.mu.Lock()
	if end := min(off+int64(len(p)), rec.synced); end > off {
		old := make([]byte, end-off)
		if _, err := rec.fd.ReadAt(old, off); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		rec.patches = append(rec.patches, patch{off: off, old: old})
	}
	f.mu.Unlock()
	n, err := wr(p, off)
	f.mu.Lock()
	rec.size = max(rec.size, off+int64(n))
	f.mu.Unlock()
	return n, err
}

// synced marks all of rec durable.
func (f *faultFS) synced(rec *fileRec) {
	f.mu.Lock()
	rec.synced = rec.size
	rec.patches = nil
	f.mu.Unlock()
}

func (w *faultFile) Sync() error {
	if err := w.fs.count("sync"); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.fs.synced(w.rec)
	return nil
}

func (w *faultFile) Close() error {
	if err := w.fs.count("close"); err != nil {
		w.f.Close() // the descriptor goes with the process
		return err
	}
	return w.f.Close()
}

// faultOpenFile is a file opened by Open (rec nil: reads only) or OpenRW.
type faultOpenFile struct {
	fs  *faultFS
	f   safefile.File
	rec *fileRec
}

func (o *faultOpenFile) Name() string { return o.f.Name() }

func (o *faultOpenFile) Read(p []byte) (int, error) {
	if err := o.fs.alive(); err != nil {
		return 0, err
	}
	return o.f.Read(p)
}

func (o *faultOpenFile) ReadAt(p []byte, off int64) (int, error) {
	if err := o.fs.alive(); err != nil {
		return 0, err
	}
	return o.f.ReadAt(p, off)
}

func (o *faultOpenFile) Size() (int64, error) {
	if err := o.fs.alive(); err != nil {
		return 0, err
	}
	return o.f.Size()
}

func (o *faultOpenFile) WriteAt(p []byte, off int64) (int, error) {
	if o.rec == nil {
		return 0, &fs.PathError{Op: "write", Path: o.f.Name(), Err: syscall.EBADF}
	}
	return writeAt(o.fs, o.rec, o.f.WriteAt, p, off)
}

func (o *faultOpenFile) Datasync() error {
	if err := o.fs.count("datasync"); err != nil {
		return err
	}
	if err := o.f.Datasync(); err != nil {
		return err
	}
	if o.rec != nil {
		o.fs.synced(o.rec)
	}
	return nil
}

// Truncate cuts the file; what it cuts off is gone for good (the harshest
// outcome), and the durable length follows it down.
func (o *faultOpenFile) Truncate(size int64) error {
	if o.rec == nil {
		return &fs.PathError{Op: "truncate", Path: o.f.Name(), Err: syscall.EBADF}
	}
	if err := o.fs.count("truncate"); err != nil {
		return err
	}
	if err := o.f.Truncate(size); err != nil {
		return err
	}
	o.fs.mu.Lock()
	o.rec.size = size
	o.rec.synced = min(o.rec.synced, size)
	kept := o.rec.patches[:0]
	for _, p := range o.rec.patches {
		if p.off < size {
			kept = append(kept, p)
		}
	}
	o.rec.patches = kept
	o.fs.mu.Unlock()
	return nil
}

func (o *faultOpenFile) Close() error { return o.f.Close() }
