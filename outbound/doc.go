// Package outbound is the delivery side of edgerelay: a worker that leases
// messages from the queue, routes them (gateway or MX), delivers them with
// the go-smtp client, decides each recipient's outcome, reschedules with
// backoff, expires them after the queue lifetime, and has its Reporter
// build delivery status notifications (with package dsn) that are written
// to the dedicated bounce store (package bounce) and returned to the
// sender. Options.Observe reports each recipient's outcome for metrics.
//
// One message's attempt reads top-down from process (attempt.go): lease →
// the operator's hold, bounce or delete (operator.go: Envelope.Hold and
// Operator, issue 13) → deliver (wireaddr.go, then the sender's gateway
// list, routes.go, or MX, route.go; dial.go, transact.go) → record
// (apply) → expire → observe → finish (schedule.go: reports, then
// reschedule or complete). Run's loop leases; a caller that leased the
// message itself (the Lambda worker, from an SQS record) enters at
// Worker.Process (process.go), the same path.
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
//   - An attempt that ended is recorded (reports, Reschedule or Complete)
//     even when the delivery's context ends meanwhile, for up to
//     finishGrace after it (finishContext, attempt.go): a deadline or a
//     shutdown right after the last reply must not leave a delivered
//     message queued. One abandoned mid-delivery is given back unrecorded.
//   - Gateways (gateway.go): Options.Gateways and each of Options.Routes
//     is a failover list (gatewaylist.go) of hops, SMTP (gatewaysmtp.go,
//     one connection pool per gateway) or SES (ses.go); routes.go picks the
//     list by sender domain and records it in Envelope.Route, which a retry
//     keeps while the route is configured; local-domain recipients never
//     take a route (inbound.go). A gateway is down, skipped for its doubling
//     back-off and the next one tried, only for what happens before MAIL
//     (or its SES equivalent); from MAIL on its replies are the recipients'
//     results and never fail over (RFC 5321 §4.2.5). With every gateway of a
//     list backing off, the least recently failed one is still tried. The
//     list's state is under one mutex, never held across a delivery; one
//     outage seen by attempts in flight together doubles the back-off once,
//     and a gateway whose back-off is over is tried again by one attempt at
//     a time.
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
//     The limit: a pipelined group is checked at its end, and one cut
//     short (421 or the connection lost at a RCPT or DATA) keeps the
//     refusals read before, though a host that answered MAIL twice would
//     send the same bytes (RFC 2920 matches replies by place alone).
//
// Pipelining (RFC 2920). To a hop whose EHLO offers PIPELINING, MAIL, every
// RCPT and DATA go in one write (go-smtp patch 5, Client.MailPipelined;
// pipeline.go), the replies are read in order through the same bounds,
// and each recipient gets the result the sequential exchange (RFC 5321
// §3.3, transact.go) gives for the same replies: the same verdicts, 452
// batches, early and reusable flags, DSN (RFC 3461) and SMTPUTF8
// (RFC 6531) parameters. Without PIPELINING nothing changes. Where
// pipelining leaves a choice:
//   - DATA is the last command of the group (RFC 2920 §3.1); when no RCPT
//     was accepted it is still sent and its reply read: refused (503/554),
//     RSET follows as without pipelining; accepted (354), go-smtp sends a
//     lone "." ("the client SMTP should send a single dot"), never a body.
//   - A pipelined reply cannot be matched to its command by anything but
//     its place, so a hop that answers a command twice would shift every
//     later verdict. A reply whose code its command does not allow (354 to
//     RCPT, 250 to DATA), even after MAIL was refused, or RSET/EHLO not
//     answered 250 after a refused DATA, or bytes already waiting after
//     DATA's 354 or when a later group or the lone dot is written, leaves
//     every recipient of the group pending and the connection dropped.
//   - Groups are at most 16 KiB of commands (several for hundreds of
//     recipients), so the write never waits on a host that waits for its
//     replies to be read: RFC 2920 leaves avoiding that deadlock to the
//     client.
//   - RSET (after a transaction without an accepted recipient or with DATA
//     refused) and the EHLO after it stay one round trip each: a delivered
//     message sends no RSET, and a pooled connection's quiet check is a
//     non-blocking peek, neither of which showed in the delivery profile.
//
// AUTH to SMTP gateways (RFC 4954; gatewayauth.go, sasl.go, token.go,
// token_fetch.go). GatewayAuthConfig.Mechanism forces PLAIN, LOGIN or
// XOAUTH2; empty chooses XOAUTH2 with a token source, else PLAIN, else
// LOGIN, from the EHLO. Where a rule is decided:
//   - AUTH is sent only over TLS, and only with a mechanism the gateway
//     offers; otherwise no AUTH and the recipients stay pending (4.7.11,
//     4.7.4). Whatever AUTH fails with is temporary: it is this relay's
//     configuration, never a verdict on the recipients.
//   - Tokens is one token source per process: a token is cached until a
//     fifth of its lifetime (at most 5 minutes) before it expires,
//     concurrent callers share one fetch, a fetch has its own deadline
//     (DefaultTokenTimeout) and a caller waits no longer than its context.
//     A failed renewal leaves the cached token in use until it expires.
//   - A refused token (535, or an XOAUTH2 error challenge, answered with an
//     empty line) is renewed once and AUTH tried again on the same session
//     (RFC 4954 §4 allows it); a second refusal is the result. Refusals
//     renew at most once a minute (tokenRefusalRenewal): a gateway that
//     refuses every token costs no fetch per message.
//   - An initial response goes inline only when the AUTH line fits 512
//     octets (RFC 4954 §4, RFC 5321 §4.5.3.1.4; shortIR): a 1-2 KB access
//     token is sent after the server's empty 334.
//   - The token endpoint's redirects are not followed (a 307 would post
//     the secret again to any host).
//   - No secret (password, client secret, key, token) is in an error, a
//     reply or a log line: token errors are words made here naming the
//     endpoint's host and at most a registered RFC 6749 error code.
//
// Amazon SES (ses.go, ses_errors.go, ses_config.go; the client is built in
// package main, ses_wire.go). Where a rule is decided:
//   - One SendEmail call per group of at most 50 recipients (SES's quota),
//     the queued message as raw content byte for byte, the attempt's
//     envelope recipients as the Destination (Bcc works; header addresses
//     are never read), the envelope sender as From and feedback address.
//     An accepted recipient is relayed: SES offers no DSN (RFC 3461
//     §6.2.2); SES's message ID is logged with the queue ID.
//   - What SES cannot take fails before any call: over 40 MB after base64
//     (552 5.3.4), SMTPUTF8 (553 5.6.7). The body is read whole (the API
//     takes it in one request), at most sesMaxMessage bytes, and at most
//     sesLargeSlots large bodies per hop are in memory at once (a slot is
//     held until the hop's SendEmail calls for the message are over).
//   - sesVerdict (ses_errors.go) maps SDK errors by type (errors.As on the
//     sesv2 types, smithy APIError codes, the HTTP status), never by text:
//     four types are final, everything else is temporary, nothing bounces
//     before the queue lifetime. The reply holds SES's code and message,
//     one line, bounded.
//   - The hop is down only when its first call failed temporarily: once
//     SES took the message for some recipients, failing over would send it
//     to them again. Nor when that call's request was written whole and
//     its connection closed unanswered (SES may have sent it; traced with
//     net/http/httptrace); one unanswered until the call's timeout is down.
//
// outbound imports queue, dsn and bounce, and never relay: the two sides
// meet only in queue.
package outbound
