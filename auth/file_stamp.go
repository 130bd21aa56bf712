//go:build unix

package auth

import (
	"os"
	"syscall"
)

// fileStamp is what tells us a file changed: an editor that writes in place
// changes size or mtime; one that writes a new file and renames it (and
// Kubernetes' ConfigMap symlink swap) changes the inode.
type fileStamp struct {
	modNano int64
	size    int64
	dev     uint64
	ino     uint64
}

// statFile returns path's stamp, following symlinks.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{modNano: fi.ModTime().UnixNano(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), uint64(sys.Ino) //nolint:unconvert // int32 on some platforms
	}
	return st, nil
}
