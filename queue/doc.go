// Package queue is the contract of the durable message queue that sits
// between the submission front end (relay) and the delivery worker
// (outbound), and nothing else: the Queue interface and the rules written
// on it, Message, Envelope and Recipient (sender, recipients with their own
// delivery state, DSN options, attempts, times), Reply, queue IDs, the
// errors (ErrClosed, ErrInvalidEnvelope, ErrInsufficientStorage), the limits
// on recorded state, ValidDomain and Envelope.Validate.
//
// The backends live elsewhere: queue/spool (the local spool, the embedded
// default) and queue/sqs (SQS + S3); queue/queuetest is the contract suite
// both pass. queue imports nothing of edgerelay's and no SDK, so the front
// end links neither backend's dependencies.
//
// Invariants every backend keeps (queuetest tries the behavioural ones on
// both):
//   - 250 means durable: Enqueue returns nil only once the body and the
//     envelope are on stable storage (fsync'd spool files, or an
//     acknowledged S3 PUT and SQS send), and the front end answers 250 to
//     the final dot only after that nil. On error nothing half-written is
//     left that could later be delivered.
//   - Enqueue refuses an envelope that fails Envelope.Validate (no
//     recipients, control characters or invalid UTF-8 in an address, ORCPT
//     or ENVID) with ErrInvalidEnvelope, and reports full storage as
//     ErrInsufficientStorage (the front end answers 452 4.3.1).
//   - At-least-once delivery: Lease hands a due message to one caller and
//     persists the claim (Attempts incremented) before it returns; the
//     message stays invisible to others until Reschedule or Complete, or
//     until the process holding it dies, after which it is due again.
//     Reschedule keeps the per-recipient state as the caller left it;
//     Complete removes the message, body included. A message whose
//     deliveries kill the process DefaultMaxDeliveryCrashes times (by
//     default) is set aside, not leased forever.
//   - The body is streamed in and out (io.Reader, Queue.Body), never held
//     whole in memory.
//   - IDs: NewID makes 20 characters of Crockford base32 that sort by
//     arrival; every ID a backend accepts is ValidID (1 to 64 characters of
//     [A-Za-z0-9_-]), safe as a file name and an S3 key. An Enqueue with a
//     preset ID is idempotent where the backend can tell.
//   - Recorded state is bounded: the worker records at most MaxReplyText
//     bytes of a recipient's Reply text and MaxRemoteMTA of its RemoteMTA,
//     and a backend with a size limit (SQS) checks at Enqueue that the
//     envelope stays storable with that much on every recipient, so nothing
//     accepted becomes unstorable after an attempt.
package queue
