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

// routeName is the Attempt.Route of this worker.
func (w *Worker) routeName() string {
	if w.o.Gateway != "" {
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
	route := w.routeName()
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
