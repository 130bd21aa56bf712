//go:build unix

package safefile

import "golang.org/x/sys/unix"

// diskFree reports the bytes and inodes available to an unprivileged user
// on dir's file system. A file system that reports no inode counts at all
// (some network file systems) counts as having inodes.
func diskFree(dir string) (free, inodes uint64, known bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false, err
	}
	inodes = uint64(st.Ffree)
	if st.Files == 0 {
		inodes = 1
	}
	return uint64(st.Bavail) * uint64(st.Bsize), inodes, true, nil
}
