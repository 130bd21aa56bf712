package outbound

import (
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Attempt is one recipient's outcome of one delivery attempt.
type Attempt struct {
	Route    string        // "gateway", "mx" or "inbound"
	Result   string        // "delivered", "deferred" or "failed"
	Duration time.Duration // from the start of this attempt (lease taken) to this recipient's final reply or verdict
	Age      time.Duration // time since the message was accepted (Envelope.Arrival) when this outcome was recorded
}

// Attempt.Route values.
const (
	RouteGateway = "gateway"
	RouteMX      = "mx"
	RouteInbound = "inbound" // a local domain's recipient, to the inbound gateway (inbound.go)
)

// Attempt.Result values.
const (
	ResultDelivered = "delivered"
	ResultDeferred  = "deferred"
	ResultFailed    = "failed"
)

// resultName is the Attempt.Result for a recipient status: relayed counts
// as delivered (it left this relay with a 250).
func resultName(st queue.RcptStatus) string {
	switch st {
	case queue.StatusPending:
		return ResultDeferred
	case queue.StatusFailed:
		return ResultFailed
	default:
		return ResultDelivered
	}
}

// routeName is the Attempt.Route of env's non-local recipients: gateway
// when its route (routes.go) is a gateway list, else mx.
func (w *Worker) routeName(env *queue.Envelope) string {
	if w.listOf(env) != nil {
		return RouteGateway
	}
	return RouteMX
}

// observe counts each recipient's outcome of this attempt in Stats and
// calls Options.Observe once for each recipient of this attempt
// (idx, the recipients pending when it started), with the state recorded
// for it, after expiry (a recipient expired in this attempt failed in it).
// start is when the attempt started, now when its outcome was recorded;
// res[i].at is when recipient i got its reply or verdict. It holds no lock.
func (w *Worker) observe(env *queue.Envelope, idx []int, res map[int]result, start, now time.Time) {
	for _, i := range idx {
		w.stats.count(env.Recipients[i].Status)
	}
	if w.o.Observe == nil {
		return
	}
	route := w.routeName(env)
	for _, i := range idx {
		at := res[i].at
		if at.IsZero() || env.Recipients[i].Status == queue.StatusFailed && res[i].status == queue.StatusPending {
			at = now // not attempted, or expired at the end of this attempt
		}
		w.o.Observe(Attempt{
			Route:    w.inboundRoute(env.Recipients[i].Addr, route),
			Result:   resultName(env.Recipients[i].Status),
			Duration: at.Sub(start),
			Age:      now.Sub(env.Arrival),
		})
	}
}

// stamp sets the time of every result in res that has none yet: the
// results of one domain, one transaction or one local decision are all
// known at the same moment.
func stamp(res map[int]result, at time.Time) {
	for i, r := range res {
		if r.at.IsZero() {
			r.at = at
			res[i] = r
		}
	}
}

// GatewayEvent is what Options.ObserveGateway hears about one gateway
// (named by its URL, which holds no secret).
type GatewayEvent struct {
	Gateway string
	Kind    string // GatewayAttempt, GatewayFailover or GatewayTokenRenewal
	// For GatewayAttempt: Down when the gateway could not be used (the
	// list failed over or gave up), else the number of recipients of each
	// result; Duration is the gateway's time for this attempt.
	Down                        bool
	Delivered, Deferred, Failed int
	Duration                    time.Duration
}

// GatewayEvent.Kind values.
const (
	// GatewayAttempt: one delivery attempt through the gateway.
	GatewayAttempt = "attempt"
	// GatewayFailover: the gateway was down and the next one of its list
	// is tried.
	GatewayFailover = "failover"
	// GatewayTokenRenewal: an OAuth2 access token for the gateway was
	// fetched (for XOAUTH2).
	GatewayTokenRenewal = "token_renewal"
)

// event hands e to Options.ObserveGateway.
func (w *Worker) gatewayEvent(e GatewayEvent) {
	if w.o.ObserveGateway != nil {
		w.o.ObserveGateway(e)
	}
}

// observe reports one attempt through gateway i.
func (l *gatewayList) observe(i int, res map[int]result, down bool, d time.Duration) {
	e := GatewayEvent{Gateway: l.hops[i].name(), Kind: GatewayAttempt, Down: down, Duration: d}
	if !down {
		for _, r := range res {
			switch resultName(r.status) {
			case ResultDelivered:
				e.Delivered++
			case ResultFailed:
				e.Failed++
			default:
				e.Deferred++
			}
		}
	}
	l.w.gatewayEvent(e)
}
