// Package relay is edgerelay's SMTP submission front end (RFC 6409) on
// go-smtp: the listeners (587 with STARTTLS, 465 with implicit TLS, RFC
// 8314), the session from EHLO to DATA and BDAT, the relay policy (AUTH is
// required, there is no other way to relay), sender alignment, limits, the
// PROXY protocol from trusted load balancers, and the submission fix-ups;
// and, with Options.MX, the inbound MX listener for the local domains
// (ServeMX: no AUTH, opportunistic STARTTLS, local recipients only).
// Accepted messages go to the queue (package queue, the contract only);
// relay never talks to the delivery side, and imports only auth and queue.
//
// Invariants:
//   - No open relay. MAIL is refused with 530 5.7.0 until AUTH succeeded
//     on the connection; there is no IP allow-list. AUTH is not offered
//     before TLS (unless Options.InsecureAuth, for development). The
//     envelope sender must be one of the addresses the identity store gives
//     the user (553 5.7.1), and with Options.CheckHeaderFrom so must every
//     From, Sender, Resent-From and Resent-Sender address (550 5.7.1).
//     The MX listener takes mail without AUTH only for recipients whose
//     canonical domain is a local domain and whose local part carries no
//     routing syntax (mxaddr.go: 550 5.7.1 for everything else, whatever
//     the sender and the client's address), stores the canonical address,
//     and with MXOptions.Verify refuses unknown ones (550 5.1.1; a
//     directory outage 451 4.4.3) so nothing accepted has to bounce.
//   - 250 means durable. The reply to the final dot or BDAT LAST is 250
//     only once the queue's Enqueue returned, which is after the message
//     is durable; any queue failure is 451 4.3.0 (452 4.3.1 when the store
//     is full) and leaves nothing half-written. Every 250 is exactly one
//     stored message with that transaction's sender, recipients and bytes:
//     each transaction owns its state (txn.go), and an aborted one (RSET,
//     EHLO, an oversized chunk, a closed connection) is never queued, even
//     while go-smtp's BDAT goroutine is still reading it.
//   - Virus scanning (scan.go, clamd.go; Options.Scan): the message is
//     streamed to clamd with INSTREAM (clamd(8), "INSTREAM": 4-byte
//     network-order length + data chunks, a zero-length chunk ends the
//     stream, do not exceed StreamMaxLength) as the queue reads it, and
//     the scanner's verdict is what the queue's last Read returns: io.EOF
//     when clean, an error otherwise. Every backend commits only after
//     reading io.EOF and keeps nothing on an error (the contract
//     abortGuard already relies on), so 250 still means durable and an
//     infected message (554 5.7.1) is never committed: there is no
//     "queued first, removed later" window, no crash can leave it
//     deliverable, and nothing is held in memory or spooled twice. (The
//     alternative, a temporary copy scanned before Enqueue, costs a second
//     write of every message.) The price: the message's bytes are in the
//     queue's uncommitted temporary file (spool) or upload (S3) while
//     clamd scans; a refusal discards them as any failed Enqueue does.
//     clamd failing is 451 4.7.1 unless FailOpen; a message over the
//     scanner's limit is never scanned in part (552 5.3.4, or unscanned
//     with X-Edgerelay-Scan when its declared SIZE said so beforehand).
//     That field is edgerelay's word alone: every X-Edgerelay-Scan field a
//     client sent (any case, folded or not) is removed from the header
//     section before it is stored, on every listener (fixups, message.go).
//   - AUTH outcomes: a wrong password is 535 5.7.8; a directory outage or
//     the throttle is 454 4.7.0, never 535; the third failure on one
//     connection ends it with 421 4.7.0. Credentials are never logged.
//   - Replies never leak internals: every reply is one of the
//     *smtp.SMTPError values named in errors.go, handed to go-smtp
//     unwrapped, and dataErrorReply is the one place where an error met
//     while reading and queueing a message becomes a reply.
//   - Slow or greedy clients are bounded: a command or data line must
//     arrive within the idle timeout, a connection gets a pre-AUTH budget
//     and a maximum duration (conn.go); connections are limited in total
//     and per client network (connlimit.go); recipients per user per hour
//     (ratelimit.go, 450 4.7.1).
//   - Shutdown stops accepting, lets transactions in progress finish
//     within its deadline and answers idle clients 421 4.3.2.
//
// Server.Stats counts connections, AUTH outcomes and messages for
// /metrics; Options.Observe receives each transaction's accept latency
// (observe.go). Files: server.go (Options, Server, listeners, shutdown),
// session.go (the session, MAIL, RCPT), sessionauth.go and sasl.go (AUTH),
// data.go (DATA and BDAT: read, check, fix up, queue), txn.go (one
// transaction's state), errors.go (the replies), conn.go (one connection),
// listener.go (accept, limits, 465's TLS), idle*.go (the idle wait),
// connlimit.go, proxyproto.go, tls.go (connections), header.go, originator.go,
// message.go, crlf.go, size.go, addrcheck.go, localpart.go (the message and
// its addresses), scan.go (the scan's options and policies), scanreader.go
// (the tee and the verdict) and clamd.go (virus scanning), mx.go, mxaddr.go
// and mxlimit.go (the MX listener), ratelimit.go, stats.go, observe.go.
package relay
