package outbound

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/edgerelay/edgerelay/queue"
)

// recoverDelivery ends a panic in the processing of m (issue 8 item 5): a
// defect that one message reaches must not kill the process, or every
// restart leases the same message and dies again. It logs the panic at
// ERROR with the message ID and the stack, counts it (Stats.Panics), and
// reschedules m with the normal backoff, keeping whatever per-recipient
// state the attempt recorded (a recipient already delivered stays
// delivered). It must be deferred directly by the function it protects.
//
// The queue backends bound the rest: a panic that kills the process before
// this runs (a fatal error, an out-of-memory kill) leaves a lease that ends,
// and the backend sets aside a message whose claims keep crashing.
func (w *Worker) recoverDelivery(ctx context.Context, m *queue.Message) {
	p := recover()
	if p == nil {
		return
	}
	w.stats.panics.Add(1)
	env := m.Envelope
	w.log.Error("delivery panicked; the message is rescheduled", "id", env.ID,
		"panic", fmt.Sprint(p), "attempts", env.Attempts, "stack", string(debug.Stack()))
	if ctx.Err() != nil {
		return // shutting down: the lease ends and the message is due again
	}
	now := w.o.Now()
	at := nextAttempt(now, env.Arrival.Add(w.o.QueueLifetime), w.o.RetrySchedule, env.Attempts, w.o.Jitter, w.o.Rand)
	func() {
		// A second panic in the queue itself is logged, not propagated:
		// the lease then ends on its own.
		defer func() {
			if p := recover(); p != nil {
				w.stats.panics.Add(1)
				w.log.Error("rescheduling after a panic panicked too; the lease ends on its own", "id", env.ID,
					"panic", fmt.Sprint(p))
			}
		}()
		w.reschedule(ctx, m, at, "panic")
	}()
}
