package outbound

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// One message's delivery attempt, top to bottom:
//
//  1. lease: loop (worker.go) leases m; the queue has counted the attempt
//     in Envelope.Attempts before handing it out (claim before deliver).
//  2. route and deliver: deliver fails the addresses that cannot be
//     written (wireaddr.go), then hands the rest to the sender's gateway
//     list (routes.go, gatewaylist.go: an SMTP gateway, gatewaysmtp.go,
//     or SES, ses.go) or to MX routing (route.go); SMTP connects (dial.go) and
//     run the transaction (transact.go). Every recipient gets a result:
//     a verdict from a decision made here (replies.go) or from what the
//     next hop or the network did (classify.go).
//  3. record: apply writes each result on its recipient (the one place
//     where Recipient.Attempts is counted) and logs it.
//  4. expire: expireDue fails what is still pending past the queue
//     lifetime (schedule.go).
//  5. observe: Options.Observe hears each recipient's outcome (observe.go).
//  6. finish: the reports owed, then reschedule or complete
//     (schedule.go).
//
// A panic anywhere is recovered by recoverDelivery (recover.go); a
// shutdown mid-attempt gives the lease back unrecorded (giveBack).

// process makes one delivery attempt for m's pending recipients, records
// it, then reports, reschedules or completes m.
func (w *Worker) process(ctx context.Context, m *queue.Message) {
	w.stats.inFlight.Add(1)
	defer w.stats.inFlight.Add(-1)
	defer w.recoverDelivery(ctx, m)
	if w.atLease(ctx, m) { // the operator's hold, bounce or delete (operator.go)
		return
	}
	start := w.o.Now()
	env := m.Envelope
	idx := env.Pending()
	var res map[int]result
	if len(idx) > 0 {
		res = w.deliver(ctx, m, idx, start)
		if ctx.Err() != nil {
			w.giveBack(m)
			return
		}
		w.apply(env, idx, res)
	}
	now := w.o.Now()
	w.expireDue(env, now)
	w.observe(env, idx, res, start, now)
	fctx, stop := finishContext(ctx)
	defer stop()
	w.finish(fctx, m, now)
}

// finishGrace is how long recording an attempt that ended may outlive
// the delivery's context (as giveBack may).
const finishGrace = 5 * time.Second

// finishContext is ctx for recording an attempt that ended (reports, then
// Reschedule or Complete), not cut short when ctx ends: a deadline or a
// shutdown right after the last reply would otherwise leave a delivered
// message queued, to be delivered again. It ends finishGrace after ctx.
func finishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var t *time.Timer
	var mu sync.Mutex
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		t = time.AfterFunc(finishGrace, cancel)
	})
	return fctx, func() {
		stopAfter()
		mu.Lock()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// result is the outcome of one attempt for one recipient.
type result struct {
	status queue.RcptStatus // StatusPending when the failure is temporary
	reply  *queue.Reply
	remote string
	at     time.Time // when the reply or verdict came (see stamp)
}

func resultOf(v verdict, remote string) result {
	st := queue.StatusFailed
	if v.Temporary {
		st = queue.StatusPending
	}
	return result{status: st, reply: v.Reply, remote: remote}
}

// deliver routes m to its pending recipients idx and returns a result for
// each one that got a verdict. Addresses that cannot be written to a next
// hop fail first, before anything is dialled (issue 8 item 7); the rest go
// to the sender's gateway list or, without one, to their domains' MX hosts.
func (w *Worker) deliver(ctx context.Context, m *queue.Message, idx []int, start time.Time) map[int]result {
	res, send := unwritable(m.Envelope, idx)
	stamp(res, start)
	if len(send) == 0 {
		return res
	}
	local, send := w.splitInbound(m.Envelope, send)
	got := w.deliverInbound(ctx, m, local) // local domains: the inbound gateway only (inbound.go)
	switch {
	case len(send) == 0:
	default:
		if l := w.listFor(m.Envelope); l != nil { // routes.go
			maps.Copy(got, l.deliver(ctx, m, send)) // gatewaylist.go
		} else {
			maps.Copy(got, w.deliverMX(ctx, m, send))
		}
	}
	stamp(got, w.o.Now())
	for i, r := range got {
		res[i] = r
	}
	return res
}

// apply records res in the envelope and logs one line per recipient.
func (w *Worker) apply(env *queue.Envelope, idx []int, res map[int]result) {
	now := w.o.Now()
	for _, i := range idx {
		r := &env.Recipients[i]
		out, ok := res[i]
		if !ok {
			out = result{status: queue.StatusPending, reply: replyNotAttempted()}
		}
		r.Attempts++
		r.LastAttempt = now
		r.Status = out.status
		// What a remote said is recorded valid and bounded (issue 8 item
		// 4): it is stored with the envelope and read by every report.
		r.Reply = recordable(out.reply)
		if out.remote != "" {
			r.RemoteMTA = recordableRemote(out.remote)
		}
		verb := map[queue.RcptStatus]string{
			queue.StatusPending: "deferred", queue.StatusFailed: "failed",
			queue.StatusDelivered: "delivered", queue.StatusRelayed: "delivered",
		}[out.status]
		lvl := slog.LevelInfo
		switch out.status {
		case queue.StatusFailed:
			lvl = slog.LevelWarn
		}
		w.log.Log(context.Background(), lvl, verb, "id", env.ID, "rcpt", r.Addr, "status", string(out.status),
			"remote", r.RemoteMTA, "reply", r.Reply.String(), "attempt", env.Attempts,
			"delay", now.Sub(env.Arrival).Round(time.Second).String())
	}
}

// giveBack ends the lease of a delivery abandoned at shutdown, due again at
// once and with the envelope as it was leased: what the abandoned attempt
// learnt is unknown, so nothing of it is recorded (a recipient it may have
// reached gets the message again: at-least-once). Left leased, the message
// would wait for its lease deadline after the restart and count as a
// crashed delivery towards quarantine, which a shutdown is not.
func (w *Worker) giveBack(m *queue.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.q.Reschedule(ctx, m, w.o.Now()); err != nil {
		w.log.Warn("delivery abandoned at shutdown; the message stays queued and is retried when its lease ends",
			"id", m.Envelope.ID, "err", err)
		return
	}
	w.log.Warn("delivery abandoned at shutdown; the message is due again at once", "id", m.Envelope.ID)
}
