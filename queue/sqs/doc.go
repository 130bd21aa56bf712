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
//   - The operator's copy of an envelope, <prefix><id>.view.json, is a view,
//     never the source of truth for delivery: written at Enqueue (while the
//     SQS send runs, not waited for unless maxViewsBehind are running), at
//     Reschedule and at a re-arm (with that receive's handle), deleted by
//     Complete; a failed write is logged and counted
//     (Stats.ViewWriteErrors), never returned. Cost: one more S3 PUT per
//     message and per retry (the DELETE is free). Against the in-process
//     emulator on 2 shared cores (BenchmarkSQSEnqueue/single, 3 alternating
//     runs) 2394-4755 msgs/s and p50 2.2-4.2 ms before, 2229-4581 msgs/s and
//     p50 3.0-4.9 ms after: the emulator does one more request per message.
//     Without the bound, the writes left behind piled up (p99 3 s).
//   - Hold and Operator come from the operator's mark, <prefix><id>.op.json,
//     alone: the receive reads it (one GET) and sets them on the leased
//     envelope; only the operator's commands write it, so no Reschedule
//     loses one. A mark asked after the copy was sent hands the message out
//     even before it is due; one asked during a delivery makes that
//     delivery's Reschedule due at once. A mark that cannot be read gives
//     the message back rather than deliver what may be held (List shows
//     it held).
//   - A record received by someone else (MessageFromRecord: the Lambda
//     worker) is handed out exactly as Lease does, or reported ErrSettled
//     (may be deleted) or ErrKept (must stay: never deleted); one not
//     worked on is given back as a fresh copy (ReturnRecord), so that its
//     receive does not count as a crashed delivery.
//
// Inside this package "sqs." is the AWS SDK's SQS client package; callers
// import this one as sqs and the SDK's under another name.
//
// Files: sqs.go (options, lifecycle), wire.go (the SQS message format),
// enqueue.go, lease.go (receive, give back, heartbeat), accept.go (a
// received message: re-arm, duplicates, marks, the claim), record.go
// (records received by an event source), finish.go (Reschedule,
// Complete), view.go (the operator's copy), mark.go (the operator's
// marks), admin.go (queue.Admin: list, show, marks), check.go (start-up check),
// s3body.go (the body objects), envobj.go (envelopes too large for a
// message), poison.go (crashed deliveries and the counters), batch.go
// (shared sends), ready.go (readiness), depth.go (the approximate counts
// for the queue gauges).
package sqs
