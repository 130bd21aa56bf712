package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue/spool"
	"github.com/edgerelay/edgerelay/queue/sqs"
	"github.com/edgerelay/edgerelay/relay"
)

// metrics is the process's Prometheus registry (its own, not the global
// one) and the histograms that the libraries' Observe hooks feed. The
// libraries know nothing of Prometheus: they count in their Stats and call
// plain hooks; metrics adapts both. The README's metrics section lists
// every name.
type metrics struct {
	reg      *prometheus.Registry
	accept   *prometheus.HistogramVec // result
	auth     *prometheus.HistogramVec // backend, result
	delivery *prometheus.HistogramVec // result, route
	age      *prometheus.HistogramVec // result
	scan     *prometheus.HistogramVec // result; nil without scanning
	gw       *gatewayMetrics          // per gateway (metrics_gateway.go); nil before addWorker
}

// Bucket boundaries, in seconds, chosen for SMTP rather than left at the
// client library's defaults (5 ms to 10 s, made for web requests).
var (
	// acceptBuckets: MAIL to the reply after the final dot includes the
	// client's upload of the message (25–50 MB over a slow uplink takes
	// minutes) and the queue's fsync or S3 PUT + SQS send (milliseconds to
	// a second); go-smtp's read deadline ends a stalled one at 5 minutes.
	acceptBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// authBuckets: a users-file check is one bcrypt comparison (about a
	// quarter second at auth.HashCost 12, less for older hashes), an OIDC
	// token check is local once the keys are known (under a ms), an LDAP
	// search + bind or an OIDC password grant is a network round trip or
	// two, bounded by the backend's timeout; a directory that hangs shows
	// at the top.
	authBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// deliveryBuckets: one recipient's attempt, lease to reply, is a
	// connection, TLS and a transaction to a gateway on the same network
	// (tens of ms) or a remote MX (a second or more); RFC 5321 §4.5.3.2
	// lets the final dot's reply take 10 minutes.
	deliveryBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// ageBuckets: a message's age at its final outcome is seconds on the
	// first attempt, then follows the retry schedule (minutes, hours) up
	// to the queue lifetime (days; 5 by default, RFC 5321 §4.5.4.1 says
	// 4–5), where the last recipients fail.
	// scanBuckets: clamd's verdict after the end of the stream is
	// milliseconds for a plain message, up to seconds for big archives;
	// RELAY_CLAMD_TIMEOUT (30 s by default) ends a slower one.
	scanBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	ageBuckets  = []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400}
)

// newMetrics makes the registry with the Go runtime and process collectors
// and the histograms, every label value known in advance (so that each
// series exists, at zero, from the start).
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	histogram := func(name, help string, buckets []float64, labels []string, values ...[]string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(h)
		for _, v := range values {
			h.WithLabelValues(v...)
		}
		return h
	}
	m.accept = histogram("edgerelay_accept_duration_seconds",
		"Time from MAIL to the reply after the final dot or BDAT LAST, by result (queued 250, refused 5xx, queue_error 4xx).",
		acceptBuckets, []string{"result"},
		[]string{relay.AcceptQueued}, []string{relay.AcceptRefused}, []string{relay.AcceptQueueError})
	var authValues [][]string
	for _, b := range []string{"file", "ldap", "oidc"} {
		for _, r := range []string{auth.CheckOK, auth.CheckFailed, auth.CheckTempFail} {
			authValues = append(authValues, []string{b, r})
		}
	}
	m.auth = histogram("edgerelay_auth_duration_seconds",
		"Time of one identity backend call during AUTH, by backend (file, ldap, oidc) and result (ok, failed, tempfail).",
		authBuckets, []string{"backend", "result"}, authValues...)
	var deliveryValues [][]string
	for _, r := range []string{outbound.ResultDelivered, outbound.ResultDeferred, outbound.ResultFailed} {
		for _, rt := range []string{outbound.RouteGateway, outbound.RouteMX, outbound.RouteInbound} {
			deliveryValues = append(deliveryValues, []string{r, rt})
		}
	}
	m.delivery = histogram("edgerelay_delivery_duration_seconds",
		"Time of one delivery attempt for one recipient, from the lease to its reply or verdict, by result (delivered, deferred, failed) and route (gateway, mx, inbound: a local domain's recipient to RELAY_INBOUND_GATEWAY).",
		deliveryBuckets, []string{"result", "route"}, deliveryValues...)
	m.age = histogram("edgerelay_message_age_seconds",
		"Age of a message (since it was accepted) when a recipient reached its final outcome, by result (delivered, failed).",
		ageBuckets, []string{"result"}, []string{outbound.ResultDelivered}, []string{outbound.ResultFailed})
	return m
}

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeAccept is relay.Options.Observe.
func (m *metrics) observeAccept(a relay.Accept) {
	m.accept.WithLabelValues(a.Result).Observe(a.Duration.Seconds())
}

// observeAuth is auth.Options.Observe.
func (m *metrics) observeAuth(c auth.Check) {
	m.auth.WithLabelValues(c.Backend, c.Result).Observe(c.Duration.Seconds())
}

// observeAttempt is outbound.Options.Observe. The message's age is
// observed only at a recipient's final outcome (delivered or failed): a
// deferral is no outcome, and counting it would weigh a message by the
// number of its retries.
func (m *metrics) observeAttempt(a outbound.Attempt) {
	m.delivery.WithLabelValues(a.Result, a.Route).Observe(a.Duration.Seconds())
	if a.Result != outbound.ResultDeferred {
		m.age.WithLabelValues(a.Result).Observe(a.Age.Seconds())
	}
}

// counter and gauge register a value read at scrape time, with constant
// labels given as name, value pairs.
func (m *metrics) counter(name, help string, v func() uint64, labels ...string) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constLabels(labels)},
		func() float64 { return float64(v()) }))
}

func (m *metrics) gauge(name, help string, v func() float64, labels ...string) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels(labels)}, v))
}

func constLabels(kv []string) prometheus.Labels {
	if len(kv) == 0 {
		return nil
	}
	l := prometheus.Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// addSubmission registers the submission server's counters (relay.Stats).
func (m *metrics) addSubmission(srv *relay.Server) {
	s := func(f func(relay.Stats) uint64) func() uint64 { return func() uint64 { return f(srv.Stats()) } }
	m.counter("edgerelay_connections_total", "SMTP connections accepted.", s(func(s relay.Stats) uint64 { return s.Connections }))
	m.counter("edgerelay_connections_refused_total", "SMTP connections refused by the connection limits.", s(func(s relay.Stats) uint64 { return s.ConnectionsRefused }))
	m.gauge("edgerelay_connections_open", "SMTP connections open now.", func() float64 { return float64(srv.Stats().Open) })
	const authHelp = "AUTH attempts by outcome (ok 235, failed 535, tempfail 454)."
	m.counter("edgerelay_auth_total", authHelp, s(func(s relay.Stats) uint64 { return s.AuthOK }), "result", "ok")
	m.counter("edgerelay_auth_total", authHelp, s(func(s relay.Stats) uint64 { return s.AuthFailed }), "result", "failed")
	m.counter("edgerelay_auth_total", authHelp, s(func(s relay.Stats) uint64 { return s.AuthTempFail }), "result", "tempfail")
	const msgHelp = "Messages at the final dot by outcome (queued 250, refused 5xx, queue_error 4xx)."
	m.counter("edgerelay_messages_total", msgHelp, s(func(s relay.Stats) uint64 { return s.Queued }), "result", relay.AcceptQueued)
	m.counter("edgerelay_messages_total", msgHelp, s(func(s relay.Stats) uint64 { return s.Refused }), "result", relay.AcceptRefused)
	m.counter("edgerelay_messages_total", msgHelp, s(func(s relay.Stats) uint64 { return s.QueueErrors }), "result", relay.AcceptQueueError)
	m.counter("edgerelay_queued_bytes_total", "Bytes of messages queued.", s(func(s relay.Stats) uint64 { return s.QueuedBytes }))
}

// addScanHistogram registers the scan latency histogram (with scanning on).
func (m *metrics) addScanHistogram() {
	m.scan = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edgerelay_scan_duration_seconds",
		Help:    "Time clamd took from the end of a message's stream to its verdict (or failure), by result (clean, infected, error, oversize).",
		Buckets: scanBuckets}, []string{"result"})
	m.reg.MustRegister(m.scan)
	for _, r := range []string{relay.ScanClean, relay.ScanInfected, relay.ScanError, relay.ScanOversize} {
		m.scan.WithLabelValues(r)
	}
}

// observeScan is relay.ScanOptions.Observe.
func (m *metrics) observeScan(s relay.Scan) {
	if m.scan != nil {
		m.scan.WithLabelValues(s.Result).Observe(s.Duration.Seconds())
	}
}

// addScan registers the virus scanning counters (relay.ScanStats).
func (m *metrics) addScan(stats func() relay.ScanStats) {
	s := func(f func(relay.ScanStats) uint64) func() uint64 { return func() uint64 { return f(stats()) } }
	const help = "Virus scans by result: clean, infected (detections), error (clamd down, erroring, slow or garbled), oversize (the message went past RELAY_CLAMD_MAX_BYTES or clamd's limit)."
	m.counter("edgerelay_scans_total", help, s(func(s relay.ScanStats) uint64 { return s.Clean }), "result", relay.ScanClean)
	m.counter("edgerelay_scans_total", help, s(func(s relay.ScanStats) uint64 { return s.Infected }), "result", relay.ScanInfected)
	m.counter("edgerelay_scans_total", help, s(func(s relay.ScanStats) uint64 { return s.Errors }), "result", relay.ScanError)
	m.counter("edgerelay_scans_total", help, s(func(s relay.ScanStats) uint64 { return s.Oversize }), "result", relay.ScanOversize)
	const uhelp = "Messages let through without a scan, by reason: fail_open (clamd failed, RELAY_CLAMD_FAIL_OPEN=true), oversize (declared larger than RELAY_CLAMD_MAX_BYTES, RELAY_CLAMD_OVERSIZE=accept)."
	m.counter("edgerelay_scan_unscanned_total", uhelp, s(func(s relay.ScanStats) uint64 { return s.UnscannedFailOpen }), "reason", relay.UnscannedFailOpen)
	m.counter("edgerelay_scan_unscanned_total", uhelp, s(func(s relay.ScanStats) uint64 { return s.UnscannedOversize }), "reason", relay.UnscannedOversize)
}

// addWorker registers the delivery worker's counters (outbound.Stats).
func (m *metrics) addWorker(w *outbound.Worker) {
	s := func(f func(outbound.Stats) uint64) func() uint64 { return func() uint64 { return f(w.Stats()) } }
	const help = "Delivery attempts per recipient by outcome."
	m.counter("edgerelay_delivery_attempts_total", help, s(func(s outbound.Stats) uint64 { return s.Delivered }), "result", outbound.ResultDelivered)
	m.counter("edgerelay_delivery_attempts_total", help, s(func(s outbound.Stats) uint64 { return s.Deferred }), "result", outbound.ResultDeferred)
	m.counter("edgerelay_delivery_attempts_total", help, s(func(s outbound.Stats) uint64 { return s.Failed }), "result", outbound.ResultFailed)
	m.counter("edgerelay_reports_total", "Delivery status notifications produced.", s(func(s outbound.Stats) uint64 { return s.Reports }))
	m.counter("edgerelay_report_errors_total", "Attempts to produce a report that failed (retried).", s(func(s outbound.Stats) uint64 { return s.ReportErrors }))
	m.counter("edgerelay_delivery_panics_total", "Deliveries that panicked, were recovered and rescheduled.", s(func(s outbound.Stats) uint64 { return s.Panics }))
	m.gauge("edgerelay_deliveries_in_flight", "Messages being delivered now.", func() float64 { return float64(w.Stats().InFlight) })
	m.addGateways(w)
}

const crashHelp = "Messages set aside in quarantine because RELAY_MAX_DELIVERY_CRASHES deliveries of them ended without a result."

// addSpool registers the local spool's gauges and counter.
func (m *metrics) addSpool(sp *spool.Spool, now func() time.Time) {
	m.reg.MustRegister(&spoolCollector{b: spool.NewBacklog(sp), now: now})
	m.counter("edgerelay_queue_crash_quarantined_total", crashHelp, func() uint64 { return sp.Stats().CrashQuarantined })
}

var (
	spoolMessagesDesc = prometheus.NewDesc("edgerelay_queue_messages",
		"Messages in the local spool, leased ones included.", nil, nil)
	spoolOldestDesc = prometheus.NewDesc("edgerelay_queue_oldest_message_age_seconds",
		"Age of the oldest message in the local spool (since it was accepted); 0 when it is empty.", nil, nil)
)

// spoolCollector reads the spool's depth and oldest arrival once per
// scrape for both gauges.
type spoolCollector struct {
	b   *spool.Backlog
	now func() time.Time
}

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- spoolMessagesDesc
	ch <- spoolOldestDesc
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	n, oldest := c.b.Read()
	age := 0.0
	if !oldest.IsZero() {
		age = max(c.now().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(spoolMessagesDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(spoolOldestDesc, prometheus.GaugeValue, age)
}

// addSQS registers the SQS queue's approximate counts and its counters.
func (m *metrics) addSQS(q *sqs.Queue) {
	m.reg.MustRegister(&sqsCollector{c: sqs.NewDepthCache(q, 0, 0)})
	m.counter("edgerelay_queue_crash_quarantined_total", crashHelp, func() uint64 { return q.Stats().CrashQuarantined })
	m.counter("edgerelay_queue_sqs_view_write_errors_total", "SQS: writes of the operator's copy of an envelope (edgerelay queue list/show) that failed; delivery is not affected.", func() uint64 { return q.Stats().ViewWriteErrors })
}

var (
	sqsMessagesDesc = prometheus.NewDesc("edgerelay_queue_sqs_messages",
		"Approximate messages on the SQS queue (all front ends and workers), by state: visible (due), not_visible (leased or waiting out a retry), delayed; read at most every 15 s, absent until SQS first answered.",
		[]string{"state"}, nil)
	sqsErrorsDesc = prometheus.NewDesc("edgerelay_queue_sqs_depth_errors_total",
		"Calls reading the SQS queue's approximate counts that failed (the gauges keep the last counts).", nil, nil)
)

// sqsCollector reads the SQS counts through the cache; a failing call
// never fails the scrape.
type sqsCollector struct{ c *sqs.DepthCache }

func (c *sqsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sqsMessagesDesc
	ch <- sqsErrorsDesc
}

func (c *sqsCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.c.Read(context.Background())
	if !d.At.IsZero() {
		for state, v := range map[string]int64{"visible": d.Visible, "not_visible": d.NotVisible, "delayed": d.Delayed} {
			ch <- prometheus.MustNewConstMetric(sqsMessagesDesc, prometheus.GaugeValue, float64(v), state)
		}
	}
	ch <- prometheus.MustNewConstMetric(sqsErrorsDesc, prometheus.CounterValue, float64(d.Errors))
}
