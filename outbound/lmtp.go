package outbound

import (
	"context"
	"errors"
	"io"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// LMTP (RFC 2033) to the inbound gateway: the same envelope as SMTP after
// LHLO, one command per round trip (no pipelining), and one difference that
// decides everything: after the final dot the server answers once for each
// recipient it accepted at RCPT, in RCPT order (§4.2), and each answer is
// that recipient's own verdict (2xx delivered, 4xx pending, 5xx failed,
// classified as an RCPT reply is). A recipient whose answer never came
// (the connection failed, a reply was too long or could not be read) stays
// pending: it is never taken for delivered.

// lmtpSession runs one LMTP transaction for m's recipients idx on sc and
// ends the session: QUIT when it is between transactions, dropped
// otherwise (also after a panic, recovered further up).
func (w *Worker) lmtpSession(ctx context.Context, sc *smtpConn, m *queue.Message, idx []int) txResult {
	done := false
	defer func() {
		if !done {
			sc.close()
		}
	}()
	uniq, twins := lmtpDistinct(m.Envelope, idx)
	tr := w.lmtpTransact(ctx, sc, m, uniq)
	for i, j := range twins {
		if r, ok := tr.results[j]; ok {
			tr.results[i] = r
		}
	}
	done = true
	if tr.reusable && !sc.guard.pending() {
		sc.quit()
	} else {
		sc.close()
	}
	return tr
}

// lmtpTransact sends m to the recipients idx over the LMTP session sc:
// MAIL, one RCPT per recipient and DATA as envelopeSequential sends them,
// the body streamed from the queue, then reads the per-recipient replies
// (lmtpVerdicts).
func (w *Worker) lmtpTransact(ctx context.Context, sc *smtpConn, m *queue.Message, idx []int) txResult {
	env := m.Envelope
	tr := txResult{results: make(map[int]result, len(idx))}
	before := func(v verdict) txResult {
		tr.set(v, sc.remote, idx)
		tr.reusable = true
		return tr
	}
	if v := w.unfit(ctx, sc.c, m); v != nil {
		return before(*v)
	}
	dsn, _ := sc.c.Extension("DSN")
	from, err := wirePath(env.From)
	if err != nil {
		return before(permanent(replyBadSender(err)))
	}
	body, err := w.q.Body(ctx, m)
	if err != nil {
		w.log.Error("cannot open queued body", "id", env.ID, "err", err)
		return before(temporary(replyBodyUnreadable()))
	}
	defer body.Close()
	accepted, wc := w.envelopeSequential(sc, env, idx, from, dsn, &tr)
	if wc == nil {
		return tr
	}
	if _, err := io.Copy(wc, bodyReader{body}); err != nil {
		// No final dot after a short body: the connection is dropped and
		// the server discards the transaction (RFC 5321 §4.1.1.4).
		v := classify(err)
		var be *errBodyRead
		if errors.As(err, &be) {
			w.log.Error("cannot read queued body", "id", env.ID, "err", err)
			v = dropped(replyBodyUnreadable())
		}
		tr.set(v, sc.remote, accepted)
		return tr
	}
	tos := make([]string, len(accepted))
	for k, i := range accepted {
		tos[k], _ = wirePath(env.Recipients[i].Addr) // written at RCPT already
	}
	resp, err := wc.CloseWithLMTPResponse()
	// As for SMTP (transact): a server that speaks DSN has taken over the
	// duty to report; one that does not leaves "relayed" for us.
	st := queue.StatusRelayed
	if dsn {
		st = queue.StatusDelivered
	}
	tr.reusable = lmtpVerdicts(&tr, sc.remote, accepted, tos, resp, err, st)
	return tr
}

// lmtpVerdicts records, for each recipient accepted[k] (sent as tos[k]),
// the verdict of its own reply after the final dot, from resp and err as
// go-smtp's CloseWithLMTPResponse returned them: a 250 is st, any other
// reply is classified (4xx pending, 5xx failed; a 2xx or 3xx other than
// 250 is out of step: pending, connection dropped). A recipient without a
// reply stays pending with the error that ended the replies. It reports
// whether every recipient was answered and the session is still usable.
func lmtpVerdicts(tr *txResult, remote string, accepted []int, tos []string, resp map[string]*smtp.DataResponse, err error, st queue.RcptStatus) bool {
	var refused smtp.LMTPDataError
	errors.As(err, &refused)
	lost := lmtpLost(err)
	usable := lost == nil
	for k, i := range accepted {
		to := tos[k]
		var v verdict
		switch {
		case resp[to] != nil:
			tr.results[i] = result{status: st, reply: replyFromText(250, resp[to].StatusText), remote: remote}
			continue
		case refused[to] != nil:
			v = classify(refused[to])
		case lost != nil:
			v = classify(lost)
		default:
			v = dropped(replyOutOfStep())
		}
		usable = usable && !v.Broken
		tr.results[i] = resultOf(v, remote)
	}
	return usable
}

// lmtpLost returns the error that ended the replies after the final dot
// before every accepted recipient had its own (I/O, a reply too long or
// not a reply), or nil when each got one. CloseWithLMTPResponse returns
// the refusals read until then joined with it.
func lmtpLost(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(smtp.LMTPDataError); ok {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if _, ok := e.(smtp.LMTPDataError); !ok {
				return e
			}
		}
		return nil
	}
	return err
}

// lmtpDistinct keeps the first of the recipients idx that go to the wire as
// one path, and maps each later one to it: go-smtp keys the replies after
// the final dot by path, so a path sent twice would get one reply for both.
// The mailbox gets the message once, and both recipients its verdict.
func lmtpDistinct(env *queue.Envelope, idx []int) (uniq []int, twins map[int]int) {
	first := make(map[string]int, len(idx))
	twins = map[int]int{}
	for _, i := range idx {
		if p, err := wirePath(env.Recipients[i].Addr); err == nil {
			if j, dup := first[p]; dup {
				twins[i] = j
				continue
			}
			first[p] = i
		}
		uniq = append(uniq, i)
	}
	return uniq, twins
}
