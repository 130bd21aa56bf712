//go:build !unix

package auth

import "os"

// fileStamp is what tells us a file changed (no inode off Unix).
type fileStamp struct {
	modNano int64
	size    int64
}

// statFile returns path's stamp, following symlinks.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modNano: fi.ModTime().UnixNano(), size: fi.Size()}, nil
}
