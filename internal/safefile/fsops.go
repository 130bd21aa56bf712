package safefile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// FS is every file operation the spool makes, so that tests can put
// a layer under the spool that fails, or "loses power", at any one of them
// (queue/spool/crash_test.go). OS, the real file system, is the default.
// Paths are absolute or relative to the working directory, as with package
// os; errors are those of package os (errors.Is(err, fs.ErrNotExist) works).
type FS interface {
	MkdirAll(dir string) error
	// CreateTemp creates a new file in dir, as os.CreateTemp.
	CreateTemp(dir, pattern string) (TempFile, error)
	Rename(oldpath, newpath string) error
	// Link makes newpath a second name of oldpath; it fails with an error
	// for which errors.Is(err, fs.ErrExist) holds when newpath exists, so a
	// link is a commit that never replaces what another writer committed.
	Link(oldpath, newpath string) error
	Remove(path string) error
	RemoveAll(path string) error
	// SyncDir fsyncs a directory, so that the entries created, renamed or
	// removed in it survive a crash.
	SyncDir(dir string) error

	ReadFile(path string) ([]byte, error)
	// Open opens an existing file for reading (ReadAt; WriteAt fails).
	Open(path string) (File, error)
	// OpenRW opens an existing file for reading and writing in place
	// (pread, pwrite, fdatasync): the spool's lease records.
	OpenRW(path string) (File, error)
	// Create creates a new file for reading and writing (O_EXCL: it fails
	// with fs.ErrExist when path exists): a journal segment, appended to
	// with WriteAt at its tail. Its directory entry is durable only after
	// SyncDir of its directory.
	Create(path string) (File, error)
	ReadDirNames(dir string) ([]string, error)
	Lstat(path string) (fs.FileInfo, error)
}

// TempFile is a file being written by the spool: written in sequence,
// and in place (WriteAt) before it is fsync'd.
type TempFile interface {
	io.Writer
	io.WriterAt
	Name() string
	Sync() error
	Close() error
}

// File is an existing file opened by Open or OpenRW.
type File interface {
	io.Reader
	io.ReaderAt
	io.WriterAt
	Name() string
	// Size is the file's current size (fstat).
	Size() (int64, error)
	// Datasync makes the file's data durable (fdatasync where the
	// platform has it, else fsync): what a write in place needs.
	Datasync() error
	// Truncate cuts the file to size bytes (an unsynced journal tail
	// removed after a failed write); durable after Datasync.
	Truncate(size int64) error
	Close() error
}

// osFile is a File of the real file system.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Datasync() error { return datasync(f.File) }

// OS is the real file system.
type OS struct{}

func (OS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
func (OS) CreateTemp(dir, pattern string) (TempFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return f, nil
}
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (OS) Link(oldpath, newpath string) error   { return os.Link(oldpath, newpath) }
func (OS) Remove(path string) error             { return os.Remove(path) }
func (OS) RemoveAll(path string) error          { return os.RemoveAll(path) }
func (OS) SyncDir(dir string) error             { return SyncDir(dir) }
func (OS) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }
func (OS) Open(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
func (OS) OpenRW(path string) (File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
func (OS) Create(path string) (File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}
func (OS) ReadDirNames(dir string) ([]string, error) { return ReadDirNames(dir) }
func (OS) Lstat(path string) (fs.FileInfo, error)    { return os.Lstat(path) }

// IsNoSpace reports whether err means the file system is full or the
// user's quota is exhausted.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// ReadDirNames lists the names in dir, unsorted.
func ReadDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
