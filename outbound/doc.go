// Package outbound is the delivery side of edgerelay: a worker that leases
// messages from the queue, routes them (gateway or MX), delivers them with
// the go-smtp client, decides each recipient's outcome, reschedules with
// backoff, expires them after the queue lifetime, and has its Reporter
// build delivery status notifications (with package dsn) that are written
// to the dedicated bounce store (package bounce) and returned to the
// sender. Options.Observe reports each recipient's outcome for metrics.
//
// One message's attempt reads top-down from process (attempt.go): lease →
// deliver (wireaddr.go, then gateway.go or route.go, dial.go, transact.go)
// → record (apply) → expire → observe → finish (schedule.go: reports,
// then reschedule or complete).
//
// Invariants, whatever a remote host sends:
//   - One reply vocabulary: every reply made here is named in replies.go
//     with its RFC 5321 and RFC 3463 codes, and a decision made here
//     returns its verdict directly. classify (classify.go) exists only for
//     replies and I/O errors from the next hop and the network, and maps
//     them by type (errors.As on *smtp.SMTPError, net, crypto/tls and
//     x509 errors), never by their text.
//   - Attempts are counted in one place each: Envelope.Attempts by the
//     queue when it leases the message (claim before deliver),
//     Recipient.Attempts by apply when the attempt is recorded. Observe is
//     called once per recipient per attempt, for recipients pending when
//     it started, outside any lock.
//   - A reply is recorded on a recipient valid UTF-8, without control
//     characters, at most queue.MaxReplyText bytes of text (recordable);
//     reports clean and bound what they read from an envelope the same way.
//   - Every loop over remote bytes consumes at least one byte per iteration
//     (dsn.CutAt), so it ends in time linear in their length.
//   - A panic in one message's delivery is recovered, logged with the
//     message ID and stack, counted, and the message rescheduled; the
//     worker goes on (recoverDelivery).
//   - In MX mode no connection is made to a loopback, private, link-local or
//     other internal address unless Options.MXAllowPrivate (refusedAddress).
//   - A reply read from a next hop is at most maxReplyBytes, all lines
//     together, or the connection is dropped (replyGuard).
//   - A connection whose state is unknown (EHLO after RSET failed) is
//     closed, never pooled; an 8-bit body never goes to a hop without
//     8BITMIME (RFC 6152 §3).
//   - No command, body or reuse follows bytes that answer no command: a
//     reply is never taken for the answer to a later command (a stale 250
//     for the final dot's), the connection is dropped instead (replyGuard).
//
// outbound imports queue, dsn and bounce, and never relay: the two sides
// meet only in queue.
package outbound
