// Package spool is the local, file-based backend of queue.Queue: the
// embedded default, for one process that both accepts and delivers, on one
// disk. It owns the spool directory (the layout is written on its
// constants in spool.go), the write order that makes an Enqueue durable,
// the leases of the process that holds the spool open, the rescan at
// start-up and its readiness check (Ready).
//
// Invariants (the list on Spool is the precise one; crash_test.go tries
// each at every file operation):
//   - Write order: the body is written to tmp/, fsync'd and linked into
//     msg/, msg/ is fsync'd, then the envelope is written to tmp/, fsync'd
//     and linked into msg/, and msg/ is fsync'd again: the envelope's name
//     is the commit, and it never points at a body a crash could lose.
//     Enqueue returns nil only after that, and removes what it wrote on
//     error. The helpers that keep the order (temporary file, fsync, link
//     or rename, directory fsync with group commit) are internal/safefile's.
//   - An envelope is never deleted except by Complete (envelope first, then
//     the body); one that cannot be used is moved to quarantine/, body
//     first, and kept for an operator.
//   - Leases live in the memory of the one process that holds the spool's
//     lock file. Every claim rewrites the envelope first, with Attempts
//     incremented and a lease deadline (LeaseTimeout); after a crash, Open
//     makes such a message due again once that deadline has passed (at
//     least once, never twice at once, no tight crash loop).
//   - Crash count: a claim that never ended is counted by the next one; a
//     message whose deliveries crashed the process MaxDeliveryCrashes times
//     in a row (a Reschedule starts the count again) is quarantined with an
//     ERROR log and counted in Stats.CrashQuarantined.
//   - Open removes only temporary files and bodies without an envelope
//     (never acknowledged), and quarantines what cannot be read for its
//     content; a transient read error (EIO, EMFILE, EACCES) leaves the
//     message in place to be retried.
//
// Files: spool.go (layout, Options, Spool, Open, Body, Close), enqueue.go
// (the write path), lease.go (Lease, claim, Reschedule, Complete), scan.go
// (the start-up rescan and quarantine), ready.go (readiness), stats.go
// (the counters and Backlog, for /metrics), lock_*.go (the lock file).
package spool
