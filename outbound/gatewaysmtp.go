package outbound

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/edgerelay/edgerelay/queue"
)

// smtpHop is one SMTP gateway (host:port, smtp://, smtps://,
// smtp+insecure://) with its own pool of idle connections: a list's
// gateways never share a session.
type smtpHop struct {
	w    *Worker
	cfg  GatewayConfig
	t    target
	host string
	pool *connPool
}

// newSMTPHop builds the hop for cfg (validated by New).
func (w *Worker) newSMTPHop(cfg GatewayConfig) *smtpHop {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host = cfg.Addr
	}
	t := target{addr: cfg.Addr, host: host, setup: w.o.Timeouts.GatewaySetup}
	switch cfg.TLS {
	case GatewayTLSImplicit:
		t.policy = tlsImplicit
	case GatewayTLSNone:
		t.policy = tlsNone
	default:
		t.policy = tlsRequired
	}
	if t.policy != tlsNone {
		t.tls = &tls.Config{
			ServerName:         host,
			RootCAs:            cfg.RootCAs,
			InsecureSkipVerify: !cfg.TLSVerify,
			MinVersion:         tls.VersionTLS12,
		}
	}
	t.auth = authFor(cfg.Auth)
	t.tokenFetched = func() { w.gatewayEvent(GatewayEvent{Gateway: cfg.URL, Kind: GatewayTokenRenewal}) }
	return &smtpHop{w: w, cfg: cfg, t: t, host: host,
		pool: &connPool{max: w.o.Concurrency, idleTimeout: w.o.GatewayIdleTimeout}}
}

func (h *smtpHop) name() string { return h.cfg.URL }

// deliver sends m to the pending recipients idx through the gateway, in
// one transaction, on a pooled connection when one is idle. A pooled
// connection that turns out dead before any recipient got a verdict (at
// MAIL or the first RCPT) is replaced once by a fresh one. The hop is down
// when a fresh connection cannot be brought to MAIL: nothing the gateway
// says before MAIL is a verdict on the recipients (a 554 greeting means "no
// service here", RFC 5321 §3.1; a refused AUTH is this relay's
// configuration), so they stay pending and the list may try the next
// gateway. Once MAIL was sent, whatever happens is the recipients' result
// and never down: a 4xx after MAIL leaves them pending for the retry
// schedule (RFC 5321 §4.2.5), a 5xx fails them, and a connection lost
// after DATA may have delivered the message, which a second gateway would
// then deliver again.
func (h *smtpHop) deliver(ctx context.Context, m *queue.Message, idx []int) (map[int]result, bool) {
	w := h.w
	sc := h.pooled()
	reused := sc != nil
	defer func() {
		// A panic in the transaction (recovered further up) must not leak
		// the connection: it is neither pooled nor closed otherwise.
		if sc != nil {
			sc.close()
		}
	}()
	for {
		if sc == nil {
			var f *setupFailure
			sc, f = w.connect(ctx, h.t)
			if f != nil {
				v := f.v
				v.Temporary = true
				res := make(map[int]result, len(idx))
				for _, i := range idx {
					res[i] = resultOf(v, h.host)
				}
				return res, true
			}
		}
		sc.uses++
		tr := w.transactBatches(ctx, sc, m, idx)
		if !tr.reusable || sc.guard.pending() {
			sc.close()
		} else {
			h.pool.put(sc)
		}
		sc = nil
		if tr.early && reused {
			w.log.Debug("pooled gateway connection failed, retrying on a new one", "id", m.Envelope.ID, "gateway", h.name())
			reused = false
			continue
		}
		return tr.results, false
	}
}

// pooled returns an idle connection that is quiet (see replyGuard.quiet),
// or nil. One that sent something while it waited (a reply to no command
// would answer the next command in its place, and every later reply would
// be one behind), or that was closed, is closed.
func (h *smtpHop) pooled() *smtpConn {
	for {
		sc := h.pool.get()
		if sc == nil || sc.guard.quiet(sc.raw) {
			return sc
		}
		h.w.log.Debug("pooled gateway connection not quiet, closing it", "remote", sc.remote)
		sc.close()
	}
}

// close ends the hop's idle connections (Run, at its end).
func (h *smtpHop) close() { h.pool.close() }
