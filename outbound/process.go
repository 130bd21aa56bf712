package outbound

import (
	"context"

	"github.com/edgerelay/edgerelay/queue"
)

// Process makes one delivery attempt for m, a message its caller leased
// from the worker's queue (the serverless worker: an SQS record turned
// into a lease), exactly as Run's loop does for a message it leased
// itself (attempt.go): deliver, record, expire, observe, report, then
// reschedule or complete. A panic is recovered and the message
// rescheduled; when ctx ends mid-delivery the message is given back due
// at once. The outcome of the lease's end (a failed Reschedule or Complete
// is logged, and the queue offers the message again) is the queue's to
// tell: the caller watches Reschedule and Complete to learn it.
func (w *Worker) Process(ctx context.Context, m *queue.Message) {
	w.process(ctx, m)
}
