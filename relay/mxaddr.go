package relay

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"github.com/edgerelay/edgerelay/queue"
)

// The MX listener's relay policy: mail only for the local domains, from
// anyone, and nothing that a server behind it could relay onwards.
//
// A recipient is accepted only when its domain, in canonical form (IDNA
// A-labels by UTS #46 mapping — case, width, compatibility forms — and
// lower case), is exactly one of the local domains, and its local part
// carries none of the old routing syntaxes that a mail server behind
// edgerelay might still honour: '%' ("user%other@local", the percent hack),
// '!' (UUCP bang paths, "other!user@local"), '@' (a quoted
// "user@other"@local, or user@other@local, which go-smtp hands over alike),
// ':' and ',' (remains of source routes). A source route
// (<@local:user@other>) is dropped by go-smtp as RFC 5321 §4.1.2 allows, so
// what is checked is user@other. Address literals, trailing dots,
// subdomains and names that do not map to a local domain are refused. The
// stored address has the canonical domain, so delivery routes exactly what
// was checked. Every refusal is the same 550 5.7.1, whatever the sender
// claims and from any IP.
var errRelayDenied = reply(550, 5, 7, 1, "Relaying denied")

// relayTrickChars may not appear in a local part on the MX listener.
const relayTrickChars = "@%!:,"

// LocalDomains is the set of domains the MX listener accepts mail for,
// in canonical form.
type LocalDomains map[string]bool

// NewLocalDomains canonicalizes names (A-labels or U-labels, any case) and
// refuses one that is not a domain name.
func NewLocalDomains(names []string) (LocalDomains, error) {
	out := LocalDomains{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		d, ok := canonicalDomain(n)
		if !ok {
			return nil, fmt.Errorf("%q is not a domain name", n)
		}
		out[d] = true
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no local domain")
	}
	return out, nil
}

// canonicalDomain returns the lower-case A-label form of a domain name, and
// false for what is not one: an address literal, a trailing dot, a name
// IDNA refuses.
func canonicalDomain(d string) (string, bool) {
	if d == "" || strings.HasPrefix(d, "[") || strings.HasSuffix(d, ".") {
		return "", false
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil || a == "" {
		return "", false
	}
	a = strings.ToLower(a)
	if strings.HasSuffix(a, ".") || !queue.ValidDomain(a) {
		return "", false
	}
	return a, true
}

// mxRecipient decides a RCPT TO path, as go-smtp hands it over, on the MX
// listener: the address to store (at a local domain, canonical), or the
// refusal.
func mxRecipient(to string, local LocalDomains) (string, error) {
	at := strings.LastIndexByte(to, '@')
	if at <= 0 || at == len(to)-1 {
		return "", errRcptSyntax
	}
	lp, dom := to[:at], to[at+1:]
	if strings.ContainsAny(lp, relayTrickChars) {
		return "", errRelayDenied
	}
	d, ok := canonicalDomain(dom)
	if !ok || !local[d] {
		return "", errRelayDenied
	}
	return lp + "@" + d, nil
}
