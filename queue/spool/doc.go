// Package spool is the local, file-based backend of queue.Queue: the
// embedded default, for one process that both accepts and delivers, on one
// disk. It owns the spool directory (the layout is written on its
// constants in spool.go, the message file's format in record.go), the
// write order that makes an Enqueue durable, the leases of the process
// that holds the spool open, the rescan at start-up (with the migration of
// the layout before issue 10) and its readiness check (Ready).
//
// One file per message (issue 10). msg/<id>.msg holds a fixed header
// (magic, version, a random instance, the body's and the envelope's offset
// and length, CRC-32C), two lease slots, the body and the envelope as
// enqueued. What each path costs on disk:
//   - Enqueue: one file created in tmp/, written in sequence (blank header,
//     body streamed, envelope), the header pwritten at 0, one fsync, a link
//     into msg/ (never over an existing name), the temporary name unlinked,
//     and one directory fsync shared by concurrent Enqueues (group commit).
//     Two serial waits for the disk instead of four.
//   - Claim (Lease): no file created: the message file is opened, its
//     header and envelope read, the next lease slot pwritten in place and
//     fdatasync'd.
//   - Reschedule (rarer: per-recipient state changed): msg/<id>.env, the
//     new envelope, written atomically as before (temporary file, fsync,
//     rename, directory fsync). It supersedes the envelope in <id>.msg when
//     it names that file's instance, and it names the claim it ends.
//   - Complete: unlink <id>.msg, unlink <id>.env, one shared directory
//     fsync.
//
// Design choices against the alternatives: the header is written last,
// in place, so the body streams at a fixed offset and is never held in
// memory; a lease record is a fixed slot with a CRC rather than a rewrite of
// the envelope, so a claim creates nothing; two slots written alternately
// (sequence % 2) mean a torn slot write falls back to the previous claim,
// which is exactly the state before the claim that did not return; the
// instance stops an envelope file left by an interrupted Complete from
// applying to a later message of the same ID (a report enqueued again).
// Complete removes <id>.msg first: removed in the other order, a crash could
// keep the message file without its envelope file, and the message would
// come back with the recipients' state of its Enqueue (duplicate deliveries
// and reports); in this order the worst case is an envelope file alone,
// which names an instance and is removed at the next Open.
//
// Invariants (the list on Spool is the precise one; crash_test.go tries
// each at every file operation):
//   - Write order: the message file is written to tmp/, fsync'd, linked
//     into msg/, and msg/ is fsync'd: the link is the commit, and a name in
//     msg/ never points at data a crash could lose. Enqueue returns nil
//     only after that directory fsync (250 means durable; no setting
//     changes that), and removes what it wrote on error. An envelope file
//     is written to tmp/, fsync'd, renamed into msg/, and msg/ fsync'd. The
//     helpers that keep the order (temporary file, fsync, link or rename,
//     directory fsync with group commit) are internal/safefile's.
//   - A message file is never deleted except by Complete (message file
//     first, then its envelope file); one that cannot be used is moved to
//     quarantine/, message file first, and kept for an operator.
//   - Leases live in the memory of the one process that holds the spool's
//     lock file. Every claim writes a lease slot first (Attempts
//     incremented, the lease deadline LeaseTimeout ahead, the crash count)
//     and fdatasyncs it; after a crash, Open makes such a message due again
//     once that deadline has passed (at least once, never twice at once, no
//     tight crash loop). A Reschedule's envelope file names the claim it
//     ends; a slot of a later claim is an unfinished claim.
//   - Crash count: a claim that never ended is counted by the next one; a
//     message whose deliveries crashed the process MaxDeliveryCrashes times
//     in a row (a Reschedule starts the count again) is quarantined with an
//     ERROR log and counted in Stats.CrashQuarantined.
//   - Open removes only temporary files and leftovers of writes that were
//     never acknowledged or whose commit happened (an envelope file without
//     its message file, of another instance, or of a migrated message; a
//     body of the previous layout without its envelope), never a file whose
//     ID is in quarantine (that move is completed), and quarantines what
//     cannot be read for its content; a transient read error (EIO, EMFILE,
//     EACCES) leaves the message in place to be retried.
//   - Upgrade: a message of the layout before issue 10 (msg/<id>.env, JSON
//     with the claim's lease_until and crashes, beside msg/<id>.eml) is
//     migrated by Open: message file written (its claim in lease slot 1),
//     fsync'd, linked, msg/ fsync'd, then the old envelope and body
//     removed. A crash at any point leaves the old message or the new one
//     complete; when both are there, the message file wins and the old
//     files are leftovers. A migration that fails for a transient reason
//     leaves the old files in place until the next start.
//
// Files: spool.go (layout, Options, Spool, Open, Body, Close), record.go
// (the message file's format, lease slots, envelope files, reading a
// message), enqueue.go (the write path), lease.go (Lease, claim,
// Reschedule, Complete), scan.go (the start-up rescan and quarantine),
// migrate.go (the previous layout), ready.go (readiness), stats.go (the
// counters and Backlog, for /metrics), lock_*.go (the lock file).
package spool
