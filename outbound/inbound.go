package outbound

import (
	"context"
	"strings"

	"github.com/edgerelay/edgerelay/queue"
)

// Inbound routing (issue 11): mail for the local domains — what the MX
// listener accepts, and what users submit to colleagues — goes only to
// Options.InboundGateway, the internal mail server, never to the outbound
// gateway or to MX. It is a transaction like any other, over SMTP or LMTP
// (RFC 2033; lmtp.go): STARTTLS when the server offers it over TCP
// (opportunistic, without certificate checks: an internal host), and the
// same retries, expiry and reports.

// splitInbound divides the pending recipients idx into those at a local
// domain, which go to the inbound gateway, and the rest. Without an inbound
// gateway nothing is local.
func (w *Worker) splitInbound(env *queue.Envelope, idx []int) (local, rest []int) {
	if w.o.InboundGateway == "" {
		return nil, idx
	}
	for _, i := range idx {
		if w.isLocal(env.Recipients[i].Addr) {
			local = append(local, i)
		} else {
			rest = append(rest, i)
		}
	}
	return local, rest
}

// isLocal reports whether addr is at a local domain routed to the inbound
// gateway. LocalDomains are A-labels and a submitted address may spell its
// domain as a U-label or in capitals: compared canonically (RFC 5891 §5),
// or bob@BÜCHER.example would leave through a gateway.
func (w *Worker) isLocal(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if w.o.InboundGateway == "" || at < 0 {
		return false
	}
	d, ok := CanonicalDomain(addr[at+1:])
	return ok && w.o.LocalDomains[d]
}

// inboundRoute is the Attempt.Route of a recipient: RouteInbound for a
// local one, route otherwise.
func (w *Worker) inboundRoute(addr, route string) string {
	if w.isLocal(addr) {
		return RouteInbound
	}
	return route
}

// deliverInbound sends m to the recipients idx (all at local domains)
// through the inbound gateway, in one transaction on a new connection, and
// returns a result for each (none when idx is empty): SMTP, or LMTP when
// Options.InboundGateway says so (ParseInboundGateway; lmtp.go). A
// connection or session that fails before any recipient got a verdict
// leaves them all pending.
func (w *Worker) deliverInbound(ctx context.Context, m *queue.Message, idx []int) map[int]result {
	res := make(map[int]result, len(idx))
	if len(idx) == 0 {
		return res
	}
	// Validated at start (config); a value that was not is dialed as it
	// is, over TCP with SMTP, and fails there: the recipients stay pending.
	a, _ := ParseInboundGateway(w.o.InboundGateway)
	host := a.host()
	sc, f := w.inboundConnect(ctx, a, true)
	if f != nil && f.plaintext {
		w.log.Info("TLS handshake with the inbound gateway failed, retrying without TLS", "id", m.Envelope.ID, "host", host, "err", f.err)
		sc, f = w.inboundConnect(ctx, a, false)
	}
	if f != nil {
		v := f.v
		v.Temporary = true
		for _, i := range idx {
			res[i] = resultOf(v, host)
		}
		return res
	}
	var tr txResult
	if a.LMTP {
		tr = w.lmtpSession(ctx, sc, m, idx)
	} else {
		tr = w.transactMX(ctx, sc, m, idx)
	}
	if tr.early {
		for _, i := range idx {
			r := tr.results[i]
			r.status = queue.StatusPending
			res[i] = r
		}
		return res
	}
	return tr.results
}

// inboundConnect connects to the inbound gateway a: STARTTLS when the
// server offers it and useTLS is set (opportunistic, without certificate
// checks: an internal host), over TCP only.
func (w *Worker) inboundConnect(ctx context.Context, a InboundAddr, useTLS bool) (*smtpConn, *setupFailure) {
	if a.LMTP {
		return w.lmtpConnect(ctx, a, useTLS)
	}
	host := a.host()
	t := target{addr: a.Addr, host: host, policy: tlsOpportunistic, tls: opportunisticTLS(host)}
	if !useTLS {
		t.policy = tlsNone
	}
	return w.connect(ctx, t)
}
