package spool

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// fileSystem is every file operation the spool makes, so that tests can put
// a layer under the spool that fails, or "loses power", at any one of them
// (crash_test.go). osFS, the real file system, is the default.
// Paths are absolute or relative to the working directory, as with package
// os; errors are those of package os (errors.Is(err, fs.ErrNotExist) works).
type fileSystem interface {
	MkdirAll(dir string) error
	// CreateTemp creates a new file in dir, as os.CreateTemp.
	CreateTemp(dir, pattern string) (tempFile, error)
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
	Open(path string) (io.ReadCloser, error)
	ReadDirNames(dir string) ([]string, error)
	Lstat(path string) (fs.FileInfo, error)
}

// tempFile is a file being written by the spool.
type tempFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
func (osFS) CreateTemp(dir, pattern string) (tempFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return f, nil
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Link(oldpath, newpath string) error   { return os.Link(oldpath, newpath) }
func (osFS) Remove(path string) error             { return os.Remove(path) }
func (osFS) RemoveAll(path string) error          { return os.RemoveAll(path) }
func (osFS) SyncDir(dir string) error             { return syncDir(dir) }
func (osFS) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }
func (osFS) Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (osFS) ReadDirNames(dir string) ([]string, error) { return readDirNames(dir) }
func (osFS) Lstat(path string) (fs.FileInfo, error)    { return os.Lstat(path) }

// isNoSpace reports whether err means the file system is full or the
// user's quota is exhausted.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
