package relay

import "time"

// Accept is the outcome of one mail transaction at the reply to its final
// dot (or BDAT LAST), for metrics: Options.Observe receives one per reply.
// A transaction that RSET, a new EHLO, an oversized chunk or a closed
// connection aborted gets no reply of its own and is not observed.
type Accept struct {
	// Result is AcceptQueued, AcceptRefused or AcceptQueueError, as
	// Stats counts them.
	Result string
	// Duration runs from the MAIL command that opened the transaction to
	// the reply (for AcceptQueued: the queue has made the message durable).
	Duration time.Duration
}

// Accept.Result values.
const (
	AcceptQueued     = "queued"      // 250: the message is durable in the queue
	AcceptRefused    = "refused"     // 5xx: the client's message was at fault
	AcceptQueueError = "queue_error" // 4xx: not queued for our fault (451, 452)
)

// accepted counts the reply to t's data and hands it to Options.Observe.
func (s *Server) accepted(t *txn, result string) {
	switch result {
	case AcceptQueued:
		s.stats.queued.Add(1)
	case AcceptRefused:
		s.stats.refused.Add(1)
	default:
		s.stats.queueErrors.Add(1)
	}
	if s.opts.Observe != nil {
		s.opts.Observe(Accept{Result: result, Duration: time.Since(t.started)})
	}
}
