// Package sqs is the scale-out backend of queue.Queue: bodies in S3,
// envelopes as SQS messages (claim-check: an SQS message holds at most
// 256 KiB), any number of front ends and workers sharing one queue.
//
// It owns the SQS message format (wire.go), the body objects
// (<prefix><id>.eml), the envelope objects of envelopes too large for a
// message, the quarantine records of crashed deliveries, and the start-up
// check of the queue and the bucket.
//
// Invariants:
//   - Body in S3 before the SQS message: Enqueue streams the body to S3,
//     then sends the envelope, and returns nil only when both were
//     acknowledged, so a message never names a body that is not there. On
//     error it deletes what it stored (best effort; the bucket's lifecycle
//     rule removes the rest), except a body of a preset ID, which is
//     written only if absent and never deleted (another Enqueue of that ID
//     may refer to it).
//   - An envelope too large for an SQS message is written as an S3 object
//     next to the body and the message carries a pointer to it; Enqueue
//     refuses (ErrEnvelopeTooLarge) an envelope that could outgrow even
//     that once every recipient holds the largest state the worker records.
//   - A lease is the SQS visibility timeout, extended by a heartbeat every
//     third of it while the delivery runs; a killed worker's message is
//     received again when it runs out (at least once).
//   - Reschedule sends the updated envelope as a new message before it
//     deletes the leased one: a crash in between leaves a rare duplicate,
//     never no message. Complete deletes the SQS message, then the body
//     (either alone retires the message: a copy whose body is gone is
//     dropped by Lease).
//   - A message whose deliveries ended without an outcome
//     MaxDeliveryCrashes times is set aside in <prefix>quarantine/, logged
//     at ERROR and counted, not received forever; the dead-letter redrive
//     stays the backstop. A body that is not an edgerelay envelope is never
//     deleted.
//
// Inside this package "sqs." is the AWS SDK's SQS client package; callers
// import this one as sqs and the SDK's under another name.
//
// Files: sqs.go (options, lifecycle), wire.go (the SQS message format),
// enqueue.go, lease.go (receive, re-arm, duplicates, heartbeat),
// finish.go (Reschedule, Complete), check.go (start-up check),
// s3body.go (the body objects), envobj.go (envelopes too large for a
// message), poison.go (crashed deliveries and the counters), batch.go
// (shared sends), ready.go (readiness), depth.go (the approximate counts
// for the queue gauges).
package sqs
