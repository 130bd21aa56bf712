package outbound

import (
	"errors"
	"fmt"

	"github.com/edgerelay/edgerelay/queue"
)

// The reply vocabulary of outbound. A recipient's outcome is a verdict: a
// reply to record and whether it is final. A verdict comes from one of two
// places only:
//   - a decision made here (an address that cannot be written, no MX, a
//     body the hop cannot take, the queue lifetime over): the decision
//     returns one of the verdicts below directly, built from the named
//     replies of this file;
//   - a reply from the next hop or an I/O failure: classify (classify.go)
//     maps it by its type.
//
// Basic codes are RFC 5321 §4.2.2's, enhanced codes RFC 3463's (§3.4 X.3
// mail system, §3.2 X.1 address, §3.5 X.4 network and routing, §3.7 X.6
// content, §3.8 X.7 security), unless a later RFC is named.

// verdict is the classification of one result: the reply to record and
// whether the failure is temporary (retry later) or permanent.
type verdict struct {
	Reply     *queue.Reply
	Temporary bool
	// Broken is set when the connection cannot be used any more (network
	// error, timeout, 421 "service not available, closing channel").
	Broken bool
}

// permanent is a verdict that no later attempt can change: the recipient
// fails.
func permanent(r *queue.Reply) verdict { return verdict{Reply: r} }

// temporary is a verdict that a later attempt may change: the recipient
// stays pending.
func temporary(r *queue.Reply) verdict { return verdict{Reply: r, Temporary: true} }

// dropped is a temporary verdict after which the connection is closed.
func dropped(r *queue.Reply) verdict { return verdict{Reply: r, Temporary: true, Broken: true} }

// reply builds a one-line reply made here.
func reply(code int, enhanced, text string) *queue.Reply {
	return &queue.Reply{Code: code, Enhanced: enhanced, Lines: []string{text}}
}

// Local errors: 451 "local error in processing" (RFC 5321 §4.2.2), X.3.0
// "other or undefined mail system status".

// replyNotAttempted is recorded for a pending recipient that an attempt
// left without a result (a defect, never expected).
func replyNotAttempted() *queue.Reply {
	return reply(451, "4.3.0", "local error: recipient not attempted")
}

// replyBodyUnreadable: the queued body could not be read; the queue's
// fault, not the hop's.
func replyBodyUnreadable() *queue.Reply {
	return reply(451, "4.3.0", "local error: cannot read the queued message")
}

// Addresses that cannot be written in SMTP (wirePath refused them): 553
// "mailbox name not allowed", X.1.7 "bad sender's mailbox address syntax"
// and X.1.3 "bad destination mailbox address syntax". why never quotes the
// address's bytes.

func replyBadSender(why error) *queue.Reply {
	return reply(553, "5.1.7", "sender address cannot be written in SMTP: "+why.Error())
}

func replyBadRecipient(why error) *queue.Reply {
	return reply(553, "5.1.3", "recipient address cannot be written in SMTP: "+why.Error())
}

// Routing (MX mode, RFC 5321 §5.1).

// replyBadDomain: 550, X.1.2 "bad destination system address", for an
// address literal or internationalized name that cannot be looked up, and
// for a domain that does not exist.
func replyBadDomain(text string) *queue.Reply { return reply(550, "5.1.2", text) }

// replyNullMX: the domain publishes a null MX. RFC 7505 §4.1: 556 with
// X.1.10 "recipient address has null MX".
func replyNullMX(domain string) *queue.Reply {
	return reply(556, "5.1.10", fmt.Sprintf("domain %s does not accept mail (null MX)", domain))
}

// replyDNSFailed: a lookup failed for another reason than "no such name":
// X.4.3 "directory server failure", temporary.
func replyDNSFailed(text string) *queue.Reply { return reply(451, "4.4.3", text) }

// replyNoUsableAddress: no address of any mail host of domain could be
// tried: X.4.4 "unable to route", temporary.
func replyNoUsableAddress(domain string) *queue.Reply {
	return reply(451, "4.4.4", "no usable address for any mail host of "+domain)
}

// replyInternalOnly: every address of every mail host is internal, and
// MXAllowPrivate is off. 554 "transaction failed", X.4.4 "unable to route":
// no later attempt can do better.
func replyInternalOnly(refused string) *queue.Reply {
	return reply(554, "5.4.4", "refusing to deliver to a private, loopback or link-local address: "+refused)
}

// What the hop cannot take.

// replyNeedsSMTPUTF8: RFC 6531 §3.2, a message that needs SMTPUTF8 is not
// sent to a server that does not offer it; 553 with RFC 6531's X.6.7
// "non-ASCII addresses not permitted".
func replyNeedsSMTPUTF8() *queue.Reply {
	return reply(553, "5.6.7", "host does not support SMTPUTF8, which this message needs (RFC 6531)")
}

// replyTooBig: RFC 1870 §6, a message larger than the hop's advertised
// fixed maximum would be refused anyway: 552 "exceeded storage
// allocation", X.3.4 "message too big for system".
func replyTooBig(size int64, limit int) *queue.Reply {
	return reply(552, "5.3.4", fmt.Sprintf("message size %d exceeds the limit of host (%d bytes)", size, limit))
}

// replyNeeds8BitMIME: RFC 6152 §3, a server that relays a message with an
// 8-bit body to a server that does not offer 8BITMIME must either convert
// it to 7 bits or return a non-delivery notification. Converting arbitrary
// MIME (nested multiparts, signed parts that conversion would break) is
// not done here: 554, X.6.3 "conversion required but not supported".
func replyNeeds8BitMIME() *queue.Reply {
	return reply(554, "5.6.3",
		"host does not support 8BITMIME, which this message needs, and conversion to 7 bits is not supported (RFC 6152)")
}

// Connection setup: temporary, and the connection is closed.

// replyNoSTARTTLS: TLS is required (RFC 3207) and the host does not offer
// it: X.7.4 "security features not supported".
func replyNoSTARTTLS() *queue.Reply {
	return reply(451, "4.7.4", "TLS is required for this host, but it did not offer STARTTLS")
}

// replyAuthNotOffered: credentials are configured and the host does not
// offer the SASL mechanism they need (RFC 4954 §3), what ("PLAIN or
// LOGIN", "XOAUTH2"): X.7.4 "security features not supported".
func replyAuthNotOffered(what string) *queue.Reply {
	return reply(451, "4.7.4", "credentials are configured for this host, but it does not offer AUTH "+what)
}

// replyAuthNeedsTLS: credentials are never sent without TLS (RFC 8314
// §3): X.7.11 "encryption required for requested authentication
// mechanism" (RFC 4954 §6), temporary since the fix is this relay's.
func replyAuthNeedsTLS() *queue.Reply {
	return reply(451, "4.7.11", "credentials are configured for this host, but the connection is not protected by TLS")
}

// replyTokenFailed: no OAuth2 access token for XOAUTH2, err a *TokenError
// that names the token endpoint's host and never a secret: RFC 4954 §6's
// 454 4.7.0 "temporary authentication failure".
func replyTokenFailed(err error) *queue.Reply {
	text := "cannot get an OAuth2 access token"
	var te *TokenError
	if errors.As(err, &te) {
		text = te.Error()
	}
	return reply(454, "4.7.0", text)
}

// replyDataBeforeTLS: bytes after the 220 to STARTTLS and before the
// handshake would be taken as sent under TLS (command injection): X.7.5
// "cryptographic failure".
func replyDataBeforeTLS() *queue.Reply {
	return reply(451, "4.7.5", "host sent data before the TLS handshake")
}

// replyOutOfStep: the host sent bytes that answer no command (see
// replyGuard): X.4.2 "bad connection".
func replyOutOfStep() *queue.Reply {
	return reply(451, "4.4.2", "connection to host failed: "+errOutOfStep.Error())
}

// replyExpired: the queue lifetime is over for a recipient still pending:
// X.4.7 "delivery time expired". The last reply, when there is one, is kept
// on a second line so that the sender learns why.
func replyExpired(lifetime string, last string) *queue.Reply {
	r := reply(451, "4.4.7", "delivery time expired: could not deliver for "+lifetime)
	if last != "" {
		r.Lines = append(r.Lines, last)
	}
	return r
}

// replyOperatorBounce: the operator bounced the message (edgerelay queue
// bounce): X.3.0 "other or undefined mail system status" (RFC 3463 §3.4)
// with 554 "transaction failed" (RFC 5321 §4.2.2), permanent. The last
// reply, when there is one, is kept on a second line.
func replyOperatorBounce(last string) *queue.Reply {
	r := reply(554, "5.3.0", "deleted by the operator")
	if last != "" {
		r.Lines = append(r.Lines, last)
	}
	return r
}

// Amazon SES (ses.go). What SES itself answers is mapped by type in
// ses_errors.go (sesVerdict), with SES's code and message in the text.

// replySESAccepted is recorded for recipients SES accepted: 250 2.0.0
// (RFC 3463 X.0.0 with class 2: success) with SES's message ID, which is
// what SES's own event records and bounce notifications name.
func replySESAccepted(id string) *queue.Reply {
	if id == "" {
		return reply(250, "2.0.0", "accepted by Amazon SES")
	}
	return reply(250, "2.0.0", "accepted by Amazon SES as "+id)
}

// replySESTooBig: the message is larger than SES takes (sesMaxMessage):
// 552 "exceeded storage allocation", X.3.4 "message too big for system",
// as replyTooBig for an SMTP hop's SIZE.
func replySESTooBig(size int64) *queue.Reply {
	return reply(552, "5.3.4", fmt.Sprintf("message size %d exceeds the limit of Amazon SES (%d bytes: 40 MB after base64 encoding)", size, sesMaxMessage))
}

// replySESBusy: a large message waited for memory (sesLargeSlots) until
// its attempt ended; the relay's own limit, so 451 "local error in
// processing", X.3.0.
func replySESBusy() *queue.Reply {
	return reply(451, "4.3.0", "local error: too many large messages for Amazon SES in memory; retried later")
}
