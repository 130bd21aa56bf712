package outbound

import (
	"sync/atomic"

	"github.com/edgerelay/edgerelay/queue"
)

// Stats are the worker's counters since start, for /metrics.
type Stats struct {
	// Per recipient and attempt, counted after expiry, as Observe sees
	// them: a recipient that expires in an attempt failed in it.
	Delivered, Deferred, Failed uint64
	// Reports produced, and attempts to produce one that failed.
	Reports, ReportErrors uint64
	// Panics is the number of deliveries that panicked and were recovered
	// (the message was rescheduled).
	Panics uint64
	// InFlight is the number of messages being delivered now.
	InFlight int64
}

type counters struct {
	delivered, deferred, failed, reports, reportErrors, panics atomic.Uint64
	inFlight                                                   atomic.Int64
}

// Stats returns a snapshot of the counters.
func (w *Worker) Stats() Stats {
	c := &w.stats
	return Stats{
		Delivered: c.delivered.Load(), Deferred: c.deferred.Load(), Failed: c.failed.Load(),
		Reports: c.reports.Load(), ReportErrors: c.reportErrors.Load(), Panics: c.panics.Load(),
		InFlight: c.inFlight.Load(),
	}
}

// count adds one recipient's outcome of one attempt.
func (c *counters) count(st queue.RcptStatus) {
	switch st {
	case queue.StatusFailed:
		c.failed.Add(1)
	case queue.StatusPending:
		c.deferred.Add(1)
	default:
		c.delivered.Add(1)
	}
}
