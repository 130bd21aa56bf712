package outbound

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/edgerelay/edgerelay/queue"
)

// Routes by sender domain (RELAY_ROUTES): the envelope sender's domain,
// as a lower-case A-label, picks its own gateway list (Options.Routes);
// other senders, and reports (null reverse-path, RFC 5321 §4.5.5), use
// RELAY_GATEWAY's list, or MX without one. Recipients at a local domain
// never take a route: they go only to the inbound gateway (inbound.go).
//
// The route is part of the message's delivery state: the first attempt
// records its key in Envelope.Route, and a retry goes the same way while
// that route is configured, failing over within its list only. When the
// operator removed the route, the retry logs it and routes by sender
// again. An empty Route (RELAY_GATEWAY's list, or MX) is derived again on
// each attempt: it is what sender routing gave and gives unless the
// operator added a route for the sender's domain in between, which then
// applies.

// CanonicalDomain returns the lower-case A-label form of a domain name
// (IDNA2008 lookup rules, RFC 5891 §5), and false for what is not one: an
// address literal, an empty label, a trailing dot, bytes that are not
// UTF-8, a name IDNA refuses, over 253 bytes as an A-label. What it returns it returns unchanged
// (FuzzGatewayConfig found "\xe400", which IDNA encoded as an A-label that
// does not decode).
func CanonicalDomain(d string) (string, bool) {
	if d == "" || strings.HasPrefix(d, "[") || strings.HasSuffix(d, ".") || !utf8.ValidString(d) || !queue.ValidDomain(d) {
		return "", false
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil || a == "" {
		return "", false
	}
	a = strings.ToLower(a)
	if len(a) > queue.MaxRoute { // RFC 1035 §2.3.4; Envelope.Validate's bound on a recorded route
		return "", false
	}
	if again, err := idna.Lookup.ToASCII(a); err != nil || again != a {
		return "", false
	}
	return a, true
}

// senderRoute is the route key for a sender: its domain when a route is
// configured for it, else "".
func (w *Worker) senderRoute(from string) string {
	at := strings.LastIndexByte(from, '@')
	if at < 0 || len(w.routes) == 0 {
		return ""
	}
	d, ok := CanonicalDomain(from[at+1:])
	if !ok || w.routes[d] == nil {
		return ""
	}
	return d
}

// listOf is the gateway list of env's recorded route (nil: MX), without
// logging or recording anything: observe names the route with it after
// listFor recorded it.
func (w *Worker) listOf(env *queue.Envelope) *gatewayList {
	if l := w.routes[env.Route]; l != nil {
		return l
	}
	return w.main
}

// listFor returns the gateway list for env's non-local recipients, nil for
// MX, and records the route in env.Route (see above).
func (w *Worker) listFor(env *queue.Envelope) *gatewayList {
	if env.Route != "" {
		if l := w.routes[env.Route]; l != nil {
			return l
		}
		w.log.Warn("the message's route is no longer configured, routing by sender", "id", env.ID, "route", env.Route)
	}
	env.Route = w.senderRoute(env.From)
	if env.Route != "" {
		return w.routes[env.Route]
	}
	return w.main
}
