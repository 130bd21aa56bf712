package outbound

import (
	"context"
	"net"

	"github.com/emersion/go-sasl"

	"github.com/edgerelay/edgerelay/queue"
)

// gatewayTarget is the configured smarthost.
func (w *Worker) gatewayTarget() target {
	host, _, _ := net.SplitHostPort(w.o.Gateway)
	t := target{addr: w.o.Gateway, host: host, tls: w.gatewayTLS}
	switch w.o.GatewayTLS {
	case GatewayTLSImplicit:
		t.policy = tlsImplicit
	case GatewayTLSNone:
		t.policy = tlsNone
	default:
		t.policy = tlsRequired
	}
	if w.o.GatewayUsername != "" {
		t.auth = sasl.NewPlainClient("", w.o.GatewayUsername, w.o.GatewayPassword)
	}
	return t
}

// deliverGateway sends m to the pending recipients idx through the gateway,
// in one transaction, on a pooled connection when one is idle. A pooled
// connection that turns out dead before any recipient got a verdict (at
// MAIL or the first RCPT) is replaced once by a fresh one.
func (w *Worker) deliverGateway(ctx context.Context, m *queue.Message, idx []int) map[int]result {
	sc := w.pooled()
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
			sc, f = w.connect(ctx, w.gatewayTarget())
			if f != nil {
				// Nothing the gateway says before MAIL is a verdict on the
				// recipients (a 554 greeting means "no service here",
				// RFC 5321 §3.1): they stay pending.
				v := f.v
				v.Temporary = true
				res := make(map[int]result, len(idx))
				for _, i := range idx {
					res[i] = resultOf(v, w.gatewayHost())
				}
				return res
			}
		}
		sc.uses++
		tr := w.transactBatches(ctx, sc, m, idx)
		if !tr.reusable || sc.guard.pending() {
			sc.close()
		} else {
			w.pool.put(sc)
		}
		sc = nil
		if tr.early && reused {
			w.log.Debug("pooled gateway connection failed, retrying on a new one", "id", m.Envelope.ID)
			reused = false
			continue
		}
		return tr.results
	}
}

// pooled returns an idle gateway connection that is quiet (see
// replyGuard.quiet), or nil. One that sent something while it waited (a
// reply to no command would answer the next command in its place, and every
// later reply would be one behind), or that was closed, is closed.
func (w *Worker) pooled() *smtpConn {
	for {
		sc := w.pool.get()
		if sc == nil || sc.guard.quiet(sc.raw) {
			return sc
		}
		w.log.Debug("pooled gateway connection not quiet, closing it", "remote", sc.remote)
		sc.close()
	}
}

func (w *Worker) gatewayHost() string {
	host, _, err := net.SplitHostPort(w.o.Gateway)
	if err != nil {
		return w.o.Gateway
	}
	return host
}
