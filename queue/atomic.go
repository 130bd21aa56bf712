package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// This file holds the write-temp-fsync-rename helpers the spool is built on.
// The order matters: file data is fsync'd before the rename, and the
// directory that receives the new name is fsync'd after it, so that after a
// crash the name either does not exist or points at complete, durable data.

// commitFile makes the temporary file f durable under the name path:
// fsync f, close it, rename it to path and fsync the directory of path.
// f is closed and, on error, removed.
func commitFile(f *os.File, path string) error {
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeFileAtomic replaces path with data: the data is written to a
// temporary file in tmpDir (which must be on the same file system as path),
// fsync'd, renamed over path, and the directory of path is fsync'd. Readers
// see either the old content or the new one, never a mix; after a crash the
// same holds. The rename is the commit point.
func writeFileAtomic(tmpDir, path string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return commitFile(f, path)
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash (fsync of the file alone does not cover its name).
func syncDir(dir string) error {
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

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
