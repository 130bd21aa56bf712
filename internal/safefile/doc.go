// Package safefile holds the write-temp-fsync-rename helpers the spool is
// built on and the bounce store's Maildir uses: write a temporary file,
// fsync it, rename or link it into place, fsync the directory (Commit,
// CommitNew, WriteFileAtomic, WriteTemp, WriteNew); directory fsyncs shared
// between concurrent writers (DirSyncer, group commit); the file operations
// behind an FS interface so that tests can fail or "lose power" at any one
// of them, writes in place included (File: pread, pwrite, fdatasync); and
// the writable-and-not-full probe that /readyz asks (ProbeDir,
// MinFreeBytes); Lock, the flock'd lock file that keeps a second process
// out of a spool or an admin socket (lock_unix.go).
//
// Invariants:
//   - The order: file data is fsync'd before the rename or link, and the
//     directory that receives the new name is fsync'd after it, so that
//     after a crash the name either does not exist or points at complete,
//     durable data. Commit, CommitNew and WriteFileAtomic return nil only
//     after that directory fsync; WriteTemp and WriteNew write the data and
//     leave the commit (and its order) to the caller.
//   - CommitNew never replaces a name: the link fails with fs.ErrExist
//     when the name exists, and created says whether this call made it, so
//     a caller cleaning up removes only its own files. On error a helper
//     leaves no temporary file of its own behind.
//   - DirSyncer.Sync returns only once a directory fsync that started
//     after the caller's change has completed; concurrent callers share
//     one fsync (group commit), and a failed fsync fails every caller it
//     was meant to cover.
//
// It imports nothing of ours.
package safefile
