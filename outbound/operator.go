package outbound

import (
	"context"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// HoldRecheck is how long a message leased with Envelope.Hold set waits
// before the worker looks at it again. The spool never hands out a held
// message; with SQS + S3 the hold is a mark read at each receive
// (queue/sqs/mark.go), so a held message comes back every HoldRecheck and
// a release takes effect at the next of these receives at the latest.
const HoldRecheck = 5 * time.Minute

// atLease carries out what the operator asked for m (edgerelay queue …)
// before any delivery, and reports whether it did:
//   - OperatorDelete: m is completed without a report, logged at WARN
//     with the ID, the sender and the recipient count.
//   - OperatorBounce: every pending recipient fails with 5.3.0 "deleted
//     by the operator" (replyOperatorBounce), and finish reports them as
//     any failure is (the NDR to the sender and the bounce store), then
//     completes m. A report that fails keeps m, as after a delivery.
//   - Hold: m is rescheduled HoldRecheck later, its attempt not counted
//     (the queue counted it at the lease).
//
// An Operator value this version does not know is logged and ignored.
func (w *Worker) atLease(ctx context.Context, m *queue.Message) bool {
	env := m.Envelope
	now := w.o.Now()
	switch env.Operator {
	case "":
	case queue.OperatorDelete:
		if err := w.q.Complete(ctx, m); err != nil {
			w.log.Error("cannot delete message as the operator asked; the queue offers it again", "id", env.ID, "err", err)
			return true
		}
		w.log.Warn("message deleted by the operator", "id", env.ID, "from", env.From,
			"rcpts", len(env.Recipients), "pending", len(env.Pending()), "attempts", env.Attempts)
		return true
	case queue.OperatorBounce:
		for _, i := range env.Pending() {
			r := &env.Recipients[i]
			last := ""
			if r.Reply != nil {
				last = "last reply: " + r.Reply.String()
			}
			r.Status = queue.StatusFailed
			r.Reply = recordable(replyOperatorBounce(last))
			w.log.Warn("failed", "id", env.ID, "rcpt", r.Addr, "status", string(r.Status), "reply", r.Reply.String(),
				"operator", queue.OperatorBounce, "delay", now.Sub(env.Arrival).Round(time.Second).String())
		}
		w.finish(ctx, m, now)
		return true
	default:
		w.log.Warn("unknown operator action on message; ignored", "id", env.ID, "operator", env.Operator)
	}
	if env.Hold {
		env.Attempts = max(0, env.Attempts-1)
		w.reschedule(ctx, m, now.Add(HoldRecheck), "on hold")
		return true
	}
	return false
}
