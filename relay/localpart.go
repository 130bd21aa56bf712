package relay

import (
	"strings"

	"github.com/edgerelay/edgerelay/queue"
)

// Quoted local parts (issue 8 item 7).
//
// go-smtp's server hands the session a path with the quoting of its local
// part removed: <"john smith"@example.net> arrives as "john smith@example.net",
// and that string is what the queue stores. The worker writes it back to
// the next hop quoted per RFC 5321 §4.1.2 (outbound/wireaddr.go), splitting
// it at its last '@', as routing does. So the relay keeps local parts with
// specials, except one that contains '@', and refuses a domain that is not
// a domain:
//
//   - Quoted-string local parts are valid RFC 5321 syntax, and "the
//     local-part MUST be interpreted and assigned semantics only by the host
//     specified in the domain part of the address" (RFC 5321 §2.3.11): a
//     submission server that refused "john smith"@example.net would refuse a
//     mailbox it has no say over. RFC 5321 §4.1.2 asks receivers to avoid
//     defining such mailboxes ("SHOULD avoid"), not relays to refuse them.
//   - An '@' in the local part cannot be kept. go-smtp hands over
//     <"a@b"@c.example> and <a@b@c.example> (an invalid path whose "domain"
//     go-smtp reads as "b@c.example") as the same string, a@b@c.example, so
//     the relay cannot store what the client meant; and for the second it
//     would hand the next hop a mailbox the client never wrote, at a domain
//     the client never named. Refused with 553 (RFC 5321 §4.2.2: "mailbox
//     name not allowed (e.g., mailbox syntax incorrect)"). Such mailboxes
//     are rare: they are exactly the ones §4.1.2 asks hosts not to define.
//   - The domain must be an RFC 5321 Domain (with RFC 6531 U-labels; '_' is
//     allowed as DNS names carry it) or an address literal. go-smtp takes
//     everything up to a space or '>' as the domain; a domain with '"', '<',
//     '\', ',' or an empty label cannot be routed or written, and the worker
//     would only fail it later with an NDR.
var (
	errRcptLocalAt    = reply(553, 5, 1, 3, `Recipient local part must not contain "@"`)
	errRcptDomain     = reply(553, 5, 1, 3, "Recipient domain is not a valid domain name or address literal")
	errSenderLocalAt  = reply(553, 5, 1, 7, `Sender local part must not contain "@"`)
	errSenderDomain   = reply(553, 5, 1, 7, "Sender domain is not a valid domain name or address literal")
	errSenderNoDomain = reply(553, 5, 1, 7, "Sender address must have a domain")
)

// checkSenderPath refuses a MAIL FROM path (as go-smtp hands it over) that
// the worker could not write back as the same mailbox.
func checkSenderPath(from string) error {
	at := strings.LastIndexByte(from, '@')
	switch {
	case at < 0:
		return errSenderNoDomain
	case strings.IndexByte(from, '@') != at:
		return errSenderLocalAt
	case !queue.ValidDomain(from[at+1:]):
		return errSenderDomain
	}
	return nil
}

// checkRcptPath is checkSenderPath for RCPT TO; the caller has checked that
// the path has a non-empty local part and domain.
func checkRcptPath(to string) error {
	at := strings.LastIndexByte(to, '@')
	switch {
	case strings.IndexByte(to, '@') != at:
		return errRcptLocalAt
	case !queue.ValidDomain(to[at+1:]):
		return errRcptDomain
	}
	return nil
}
