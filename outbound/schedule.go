package outbound

import (
	"context"
	"io"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// finish runs after an attempt was recorded and expired (at now): it
// produces the reports owed, and then reschedules or completes the
// message. Reports come first: a crash before the Reschedule/Complete
// repeats an idempotent Report on the next lease, and never loses one.
func (w *Worker) finish(ctx context.Context, m *queue.Message, now time.Time) {
	env := m.Envelope
	expiry := env.Arrival.Add(w.o.QueueLifetime)

	ok := w.reportDelay(ctx, m, now, expiry) &&
		w.reportFinal(ctx, m, queue.StatusFailed, dsn.Failed) &&
		w.reportFinal(ctx, m, queue.StatusRelayed, dsn.Relayed)
	// StatusDelivered owes no report from us: the next hop speaks DSN and
	// got the NOTIFY parameters, so it reports success itself (RFC 3461
	// §6.2.2: a "relayed" DSN is only for hops that do not).

	switch {
	case !ok:
		at := now.Add(w.o.ReportRetry)
		w.reschedule(ctx, m, at, "report pending")
	case len(env.Pending()) > 0:
		at := nextAttempt(now, expiry, w.o.RetrySchedule, env.Attempts, w.o.Jitter, w.o.Rand)
		w.reschedule(ctx, m, at, "retry")
	default:
		if err := w.q.Complete(ctx, m); err != nil {
			w.log.Error("cannot complete message; the queue may offer it again (a duplicate delivery is possible)", "id", env.ID, "err", err)
			return
		}
		w.log.Info("message done", "id", env.ID, "attempts", env.Attempts,
			"delay", now.Sub(env.Arrival).Round(time.Second).String())
	}
}

func (w *Worker) reschedule(ctx context.Context, m *queue.Message, at time.Time, why string) {
	env := m.Envelope
	if err := w.q.Reschedule(ctx, m, at); err != nil {
		w.log.Error("cannot reschedule message; the queue offers it again with its last saved state", "id", env.ID, "err", err)
		return
	}
	w.log.Info("message rescheduled", "id", env.ID, "why", why, "next", at.UTC().Format(time.RFC3339),
		"in", FormatDuration(at.Sub(w.o.Now())), "attempts", env.Attempts)
}

// expireDue fails the recipients of env still pending at now when the
// queue lifetime is over.
func (w *Worker) expireDue(env *queue.Envelope, now time.Time) {
	if pending := env.Pending(); len(pending) > 0 && !now.Before(env.Arrival.Add(w.o.QueueLifetime)) {
		w.expire(env, pending, now)
	}
}

// expire fails the recipients still pending after the queue lifetime with
// 4.4.7 "delivery time expired" (RFC 3463 §3.5), keeping the last reply's
// text so the sender learns why.
func (w *Worker) expire(env *queue.Envelope, pending []int, now time.Time) {
	for _, i := range pending {
		r := &env.Recipients[i]
		last := ""
		if r.Reply != nil {
			last = "last reply: " + r.Reply.String()
			if r.RemoteMTA != "" {
				last = "last reply from " + r.RemoteMTA + ": " + r.Reply.String()
			}
		}
		r.Status = queue.StatusFailed
		r.Reply = recordable(replyExpired(FormatDuration(w.o.QueueLifetime), last))
		w.log.Warn("failed", "id", env.ID, "rcpt", r.Addr, "status", string(r.Status), "remote", r.RemoteMTA,
			"reply", r.Reply.String(), "attempt", env.Attempts, "delay", now.Sub(env.Arrival).Round(time.Second).String())
	}
}

// reportDelay sends the "delayed" DSN once per message, when it has been
// queued for DelayWarning, for the pending recipients that want it
// (NOTIFY=DELAY, or no NOTIFY: RFC 3461 §4.1).
func (w *Worker) reportDelay(ctx context.Context, m *queue.Message, now, expiry time.Time) bool {
	env := m.Envelope
	if w.o.DelayWarning <= 0 || env.DelayWarned || now.Sub(env.Arrival) < w.o.DelayWarning {
		return true
	}
	pending := env.Pending()
	if len(pending) == 0 {
		return true
	}
	var idx []int
	for _, i := range pending {
		if r := &env.Recipients[i]; r.Wants(queue.NotifyDelay) && !r.DelayReported {
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		if !w.report(ctx, m, dsn.Delayed, idx, expiry) {
			return false
		}
		for _, i := range idx {
			env.Recipients[i].DelayReported = true
		}
	}
	env.DelayWarned = true
	return true
}

// reportFinal reports the recipients in status st that were not reported
// yet. Failures are all handed to the reporter (it stores every NDR and
// applies NOTIFY to what it returns to the sender); "relayed" only for the
// recipients that asked for NOTIFY=SUCCESS.
func (w *Worker) reportFinal(ctx context.Context, m *queue.Message, st queue.RcptStatus, kind dsn.Action) bool {
	env := m.Envelope
	var idx []int
	for i := range env.Recipients {
		r := &env.Recipients[i]
		if r.Status != st || r.Reported {
			continue
		}
		if st != queue.StatusFailed && !r.Wants(queue.NotifySuccess) {
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return true
	}
	if !w.report(ctx, m, kind, idx, time.Time{}) {
		return false
	}
	for _, i := range idx {
		env.Recipients[i].Reported = true
	}
	return true
}

// report hands one report to the reporter, or logs it when there is none.
func (w *Worker) report(ctx context.Context, m *queue.Message, kind dsn.Action, idx []int, until time.Time) bool {
	env := m.Envelope
	rcpts := make([]string, len(idx))
	for n, i := range idx {
		rcpts[n] = env.Recipients[i].Addr
	}
	if w.o.Reporter == nil {
		w.log.Info("report (no reporter configured)", "id", env.ID, "kind", string(kind), "rcpts", rcpts)
		return true
	}
	req := ReportRequest{
		Message:    m,
		Kind:       kind,
		Recipients: idx,
		Body: func(ctx context.Context) (io.ReadCloser, error) {
			return w.q.Body(ctx, m)
		},
		WillRetryUntil: until,
	}
	if err := w.o.Reporter.Report(ctx, req); err != nil {
		w.stats.reportErrors.Add(1)
		w.log.Error("cannot produce report; message kept for another try", "id", env.ID, "kind", string(kind),
			"rcpts", rcpts, "err", err)
		return false
	}
	w.stats.reports.Add(1)
	w.log.Info("report produced", "id", env.ID, "kind", string(kind), "rcpts", rcpts)
	return true
}
