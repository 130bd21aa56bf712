// Package outbound is the delivery side of edgerelay: a worker that leases
// messages from the queue, routes them (gateway or MX), delivers them with
// the go-smtp client, classifies replies per recipient (4xx temporary, 5xx
// permanent), reschedules with backoff, expires them after the queue
// lifetime, and has its Reporter build delivery status notifications (with
// package dsn) that are written to the dedicated bounce store and returned
// to the sender.
//
// Invariants, whatever a remote host sends:
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
