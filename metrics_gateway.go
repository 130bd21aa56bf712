package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgerelay/edgerelay/outbound"
)

// Per-gateway metrics (issue 12), labelled with the gateway's URL as
// configured (no secret: a URL with credentials is refused at start).
type gatewayMetrics struct {
	attempts  *prometheus.CounterVec   // gateway, result
	duration  *prometheus.HistogramVec // gateway
	failovers *prometheus.CounterVec   // gateway
	renewals  *prometheus.CounterVec   // gateway
}

// gatewayUnavailable is the result of an attempt that found the gateway
// down (unreachable, 4xx/5xx before MAIL, token endpoint or SES down).
const gatewayUnavailable = "unavailable"

// addGateways registers the per-gateway metrics with a zero series for
// each configured gateway.
func (m *metrics) addGateways(w *outbound.Worker) {
	g := &gatewayMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgerelay_gateway_attempts_total",
			Help: "Delivery attempts through each gateway: per recipient by result (delivered, deferred, failed), and unavailable once per attempt that found the gateway down."},
			[]string{"gateway", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edgerelay_gateway_duration_seconds",
			Help: "Time of one attempt through a gateway: connection (or a pooled one), TLS, AUTH and the transaction, or the SES call.", Buckets: deliveryBuckets},
			[]string{"gateway"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgerelay_gateway_failovers_total",
			Help: "Times a gateway was down and the next one of its list was tried."}, []string{"gateway"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgerelay_gateway_token_renewals_total",
			Help: "OAuth2 access tokens fetched for a gateway's XOAUTH2."}, []string{"gateway"}),
	}
	m.reg.MustRegister(g.attempts, g.duration, g.failovers, g.renewals)
	for _, s := range w.GatewayStatus() {
		for _, r := range []string{outbound.ResultDelivered, outbound.ResultDeferred, outbound.ResultFailed, gatewayUnavailable} {
			g.attempts.WithLabelValues(s.Gateway, r)
		}
		g.duration.WithLabelValues(s.Gateway)
		g.failovers.WithLabelValues(s.Gateway)
		g.renewals.WithLabelValues(s.Gateway)
	}
	m.gw = g
}

// observeGateway is outbound.Options.ObserveGateway.
func (m *metrics) observeGateway(e outbound.GatewayEvent) {
	g := m.gw
	if g == nil {
		return
	}
	switch e.Kind {
	case outbound.GatewayAttempt:
		if e.Down {
			g.attempts.WithLabelValues(e.Gateway, gatewayUnavailable).Inc()
		}
		g.attempts.WithLabelValues(e.Gateway, outbound.ResultDelivered).Add(float64(e.Delivered))
		g.attempts.WithLabelValues(e.Gateway, outbound.ResultDeferred).Add(float64(e.Deferred))
		g.attempts.WithLabelValues(e.Gateway, outbound.ResultFailed).Add(float64(e.Failed))
		g.duration.WithLabelValues(e.Gateway).Observe(e.Duration.Seconds())
	case outbound.GatewayFailover:
		g.failovers.WithLabelValues(e.Gateway).Inc()
	case outbound.GatewayTokenRenewal:
		g.renewals.WithLabelValues(e.Gateway).Inc()
	}
}
