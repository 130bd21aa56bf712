package safefile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MinFreeBytes is the free space below which a directory is reported not
// ready: an enqueue (or a report) would soon fail with "disk full".
const MinFreeBytes = 1 << 20

// ProbeDir checks that dir is writable and has room: it creates name in
// dir, writes, fsyncs and removes it, then checks that the file system
// has at least minFree bytes and one inode free (where the platform can
// tell). The spool and the bounce store's Maildir use it.
func ProbeDir(ctx context.Context, dir, name string, minFree uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create a file: %w", err)
	}
	_, werr := f.Write([]byte("readiness probe\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(p)
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("cannot write a file: %w", err)
	}
	free, inodes, known, err := diskFree(dir)
	switch {
	case err != nil:
		return fmt.Errorf("statfs: %w", err)
	case !known:
		return nil
	case free < minFree:
		return fmt.Errorf("%s: %d bytes free, below %d", dir, free, minFree)
	case inodes == 0:
		return fmt.Errorf("%s: no free inodes", dir)
	}
	return nil
}
