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
// The journal (issue 10). A message of up to JournalMaxBytes (body,
// envelope and record header; 128 KiB by default) is not a file of its
// own: Enqueue reads the body into a pooled buffer of that bound, and if
// the body ends within it, appends one MSG record to journal/<n>.log and
// returns once an fdatasync that started after that write has succeeded.
// A longer body (the buffered prefix, then the rest of the stream) takes
// the one-file path above; so does every message when JournalMaxBytes is
// negative, or once the journal is broken. Records (journal_record.go):
// MSG (instance, body, envelope as enqueued), CLAIM (lease sequence,
// attempts, lease deadline, crash count: what a lease slot holds), END
// (the message left the journal). Each has a magic, its length and a
// CRC-32C over the whole record.
//   - Group commit (journal.go): records are written one WriteAt each at
//     the tail, under a mutex; the first waiter whose record is not yet
//     covered runs one fdatasync for every record written before it
//     started, outside the mutex, and the others wait for it. No setting
//     acknowledges before that fdatasync. A write that fails may leave
//     part of its record past the tail (a short write on a full disk):
//     nothing else is written, fdatasync'd or rotated until that is
//     truncated and the cut fdatasync'd, so that no byte past the tail of
//     a segment ever becomes durable (a record written at the same tail
//     over the first bytes of a longer one would leave the rest after its
//     end, where a crafted body reads as records).
//   - Segments rotate at JournalSegmentBytes: the full segment is
//     truncated to its tail and fdatasync'd completely, the new file
//     created and journal/ fsync'd, all before a record is written to the
//     new one; so a torn record can only be at the tail of the newest
//     segment that has bytes. Segments are numbered upwards and never
//     reused or written below their durable length (what a failure cut
//     off was never acknowledged, and nothing reads it).
//   - A failed write fails its own record: the segment is cut back to the
//     tail (truncate, fdatasync; the records written before it are synced
//     by that fdatasync). A failed fdatasync (EIO, ENOSPC) fails every
//     record not covered by a successful fdatasync (ENOSPC as
//     ErrInsufficientStorage), truncates the segment to its durable length
//     and fdatasyncs it: nothing an Enqueue failed for can replay. Either
//     way the segment stays the active one (what is below its durable
//     length was fdatasync'd before): a disk that keeps failing creates no
//     file per failure. Each waiter holds the outcome of its batch (the
//     records one fdatasync covers), so nothing of a failure outlives the
//     waiters it failed. If the clean-up fails, the journal is broken:
//     Enqueue uses the one-file path, Ready fails, and claims and ENDs of
//     journal messages fail; later appends and Ready retry the clean-up
//     (truncate, fdatasync) after a back-off (1 s, doubling up to 30 s),
//     and the journal works again, Ready passes, once it succeeds.
//   - Decided: a failure whose clean-up failed, then a crash or restart
//     before a retry succeeds. The failed records are still in the newest
//     segment past its durable length, whole or torn, and nothing durable
//     says where that length was: Open replays the whole ones, though their
//     Enqueues returned an error (a client that got 451 and sends again
//     has the message delivered twice). Accepted as the same double-failure
//     class as the one-file path: there a failing directory fsync followed
//     by a failing Remove (write in enqueue.go) leaves a linked message
//     file, which Open takes likewise. Both need a second failure of the
//     disk right after the first, and both end in a duplicate, never a
//     loss. A side file naming the durable length would need a create, a
//     write, an fsync, a rename and a directory fsync to work on the disk
//     where a truncate (or the fdatasync after it) has just failed.
//   - Claim: a CLAIM record, group-committed, before Lease returns. The
//     crash count and lease deadline work as with lease slots; a CLAIM
//     without END at Open is a crashed claim.
//   - Reschedule moves the message to msg/<id>.msg (the Enqueue write
//     path with the new envelope: fsync, link, msg/ fsync'd), then writes
//     an END. Complete writes an END. Quarantine writes quarantine/<id>.msg
//     (keeping the record's instance), then an END. A crash between the
//     move and its END leaves both: Open lets msg/ (or the quarantine copy
//     of the same instance) win and writes the END; a moved file keeps
//     its MSG's instance (a msg/ file of the ID with another instance and
//     another body is another message: the MSG is copied to quarantine
//     before its END, ERROR). An END that fails after a move or quarantine is
//     pending (journal_lease.go): written before the next append of an
//     Enqueue, claim, Reschedule or Complete, and before an Enqueue of its
//     ID writes anything (else that Enqueue fails); a Complete of the
//     moved message waits for it before it removes the file (so that the
//     MSG cannot come back once the file is gone), the message out of the
//     due heap meanwhile (it was delivered); so does a journal message
//     whose Complete's END fails. Such a Complete returns errEndPending
//     (the message goes once the END is written, by the next append or
//     a timer; a crash before brings it back); when the END is written
//     during the Complete (by its own flush or one running beside it, which
//     it waits for), it returns the outcome of the file's removal. Open writes such ENDs too,
//     and keeps them pending when it cannot (a full disk must not stop
//     the start that lets deliveries free space). A claim that cannot be
//     written (not ENOSPC) makes the message due after spoolErrorRetry,
//     so that it does not stand at the top of the heap.
//   - Segment deletion: only the oldest segment, only when it is not the
//     active one and every MSG in it has a synced END; unlink, then fsync
//     journal/. Why in order: a CLAIM or END is always in the segment of
//     its MSG or a newer one. Deleting a newer segment first could drop
//     the END of a MSG in an older segment that survives, and the message
//     would come back after a restart; deleting oldest first means that
//     when an END's segment goes, every older segment (the one of its MSG
//     included) is gone already.
//   - Open: the msg/ scan first, then every segment in order. A bad
//     record (CRC, length, magic, cut short) in the newest segment with
//     bytes, with no valid record after it and not all there (its
//     header's length past the end of the file: a torn write leaves its
//     record short), is a write never acknowledged: the segment is cut
//     there and fdatasync'd, WARN with the byte count. A bad record
//     anywhere else, followed by a valid one, or all there (a flipped bit
//     in the last acknowledged record), is damage: the rest of that segment (at most a segment's bound,
//     JournalSegmentBytes or its default + maxRecordLen) is copied to
//     quarantine/journal@<n>.log.at-<offset> for an operator (ERROR), then
//     the segment is cut; the records before it are kept (acknowledged
//     messages after the damage are in that copy, not lost silently). A
//     segment is exactly segmentName(n) with 0 < n <= 2^48; any other name
//     is left alone (WARN).
//   - Decided where the design was silent: the journal directory is
//     replayed whatever JournalMaxBytes says (turning the journal off
//     never strands a message); the first segment is created at the first
//     append, not at Open; Close closes the active segment when nothing
//     is in flight and the journal is not broken (a broken journal's tail
//     is still to be cut), and a later append (a Complete during a
//     shutdown) starts a new one; a full file system hands a journal message out
//     with its lease in memory only, as for a message file; a rotation
//     whose create or directory fsync fails fails only the append that
//     needed it; replay reads at most 16 MiB + 4 KiB per record, which is
//     also the cap on JournalMaxBytes; a second MSG for an ID without END
//     (another instance) is the message, the first is copied to
//     quarantine (unless its instance is there already) and gets its END;
//     CLAIM and END apply to the MSG of their instance; a transient read
//     error during replay fails Open rather than drop anything.
//
// The operator (issue 13; admin.go): Spool implements queue.Admin. List
// and Show read journal and msg/ messages alike, leased or not. Hold,
// Release and Bounce end with Reschedule's write, Delete with Complete's,
// on a message taken out of the due heap in memory (no claim written, no
// attempt counted); their envelope file ends no claim, so a crashed claim
// stays counted. A held message (Envelope.Hold, durable) is dropped from
// the due heap by nextDue and never leased; Retry is in memory only. On a
// message a worker holds, the action is recorded (adminMarks) and written
// by that worker's Reschedule (immediate false); a Reschedule whose write
// fails keeps the marks, and a claim hands the message out with the marks
// it carries (a delete or bounce is never lost to a failed write and
// delivered). One action at a time.
//
// Files: spool.go (layout, Options, Spool, Open, Body, Close), record.go
// (the message file's format, lease slots, envelope files, reading a
// message), enqueue.go (the write path), lease.go (Lease, claim),
// lease_end.go (Reschedule, Complete), scan.go (the start-up rescan and
// quarantine), migrate.go (the previous layout), ready.go (readiness),
// stats.go (the counters and Backlog, for /metrics), lock.go (the lock
// file);
// journal.go (appends, group commit, rotation, failures, segment
// deletion), journal_record.go (the record format and reading a segment),
// journal_enqueue.go (Enqueue into the journal, Body and envelope of a
// journal message), journal_lease.go (claim, Reschedule's move to msg/,
// Complete, quarantine), journal_replay.go (Open), journal_damage.go
// (replay's search past damage in a segment, and the quarantine of its
// rest), journal_moved.go (replay's check of a journal message against
// msg/ and quarantine/), due.go (the order in which due messages are
// handed out), admin.go (the operator's actions), admin_view.go (List,
// Show, OpenBody).
package spool
