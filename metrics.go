package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/relay"
)

// metricsHandler serves the counters of the parts that run in this process
// in the Prometheus text exposition format (version 0.0.4).
func metricsHandler(srv *relay.Server, worker *outbound.Worker, queueLen func() int, crashQuarantined func() uint64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m := metricWriter{w}
		if srv != nil {
			s := srv.Stats()
			m.counter("edgerelay_connections_total", "SMTP connections accepted.", s.Connections)
			m.counter("edgerelay_connections_refused_total", "SMTP connections refused by the connection limits.", s.ConnectionsRefused)
			m.gauge("edgerelay_connections_open", "SMTP connections open now.", int64(s.Open))
			m.labelled("edgerelay_auth_total", "AUTH attempts by outcome.", "counter", "result",
				[]string{"ok", "failed", "tempfail"}, []uint64{s.AuthOK, s.AuthFailed, s.AuthTempFail})
			m.labelled("edgerelay_messages_total", "Messages at the final dot by outcome (queued 250, refused 5xx, queue_error 451).", "counter", "result",
				[]string{"queued", "refused", "queue_error"}, []uint64{s.Queued, s.Refused, s.QueueErrors})
			m.counter("edgerelay_queued_bytes_total", "Bytes of messages queued.", s.QueuedBytes)
		}
		if worker != nil {
			s := worker.Stats()
			m.labelled("edgerelay_delivery_attempts_total", "Delivery attempts per recipient by outcome.", "counter", "result",
				[]string{"delivered", "deferred", "failed"}, []uint64{s.Delivered, s.Deferred, s.Failed})
			m.counter("edgerelay_reports_total", "Delivery status notifications produced.", s.Reports)
			m.counter("edgerelay_report_errors_total", "Attempts to produce a report that failed (retried).", s.ReportErrors)
			m.counter("edgerelay_delivery_panics_total", "Deliveries that panicked, were recovered and rescheduled.", s.Panics)
			m.gauge("edgerelay_deliveries_in_flight", "Messages being delivered now.", s.InFlight)
		}
		if queueLen != nil {
			m.gauge("edgerelay_queue_messages", "Messages in the local spool.", int64(queueLen()))
		}
		if crashQuarantined != nil {
			m.counter("edgerelay_queue_crash_quarantined_total", "Messages set aside in quarantine because RELAY_MAX_DELIVERY_CRASHES deliveries of them ended without a result.", crashQuarantined())
		}
	}
}

type metricWriter struct{ w io.Writer }

func (m metricWriter) counter(name, help string, v uint64) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
}

func (m metricWriter) gauge(name, help string, v int64) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
}

func (m metricWriter) labelled(name, help, typ, label string, vals []string, counts []uint64) {
	fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	for i, v := range vals {
		fmt.Fprintf(m.w, "%s{%s=%q} %d\n", name, label, v, counts[i])
	}
}
