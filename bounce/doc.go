// Package bounce is edgerelay's bounce stores: the dedicated places that
// hold the delivery status notifications edgerelay writes and nothing else
// (ARCHITECTURE.md, "The bounce store"). Open picks one from its spec: a
// Maildir ("maildir:PATH", which any IMAP server can serve) or an S3 bucket
// and key prefix ("s3://bucket/prefix", opened by NewS3).
//
// Invariants:
//   - A store is dedicated: it is never the queue's own location, inside it
//     or around it, and it is refused when it holds anything edgerelay did
//     not write (besides the files Dovecot keeps beside a Maildir it
//     serves). A marker (the file or object .edgerelay-bounce-store)
//     records that the location was adopted.
//   - Put stores each key once: a report is written to a temporary name,
//     fsync'd and linked into place (Maildir) or written with a conditional
//     PUT (S3), so a retry after a crash finds the key and stores nothing
//     new.
//
// bounce imports internal/safefile, internal/s3util and the queue contract
// (queue.ValidID, and nothing else of it), nothing else of edgerelay's:
// report keys are queue IDs, checked by queue's one rule.
package bounce
