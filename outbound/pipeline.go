package outbound

import (
	"errors"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// envelopePipelined is envelopeSequential for a host that offers
// PIPELINING (RFC 2920): MAIL, every RCPT and DATA go in one write
// (smtp.Client.MailPipelined, go-smtp patch 5), then the replies are read
// in order and give the same results, flags and connection state as
// envelopeSequential for the same replies. Where they differ from a
// sequential exchange, RFC 2920 §3.1 decides:
//   - MAIL refused: the RCPT and DATA already sent are answered too (503
//     or the like) and their replies read and only checked for a code out
//     of step; every recipient gets MAIL's verdict, as without pipelining.
//   - No RCPT accepted: the client "cannot assume that the DATA command
//     will be rejected"; refused (503/554), the session goes on with RSET
//     as without pipelining; accepted (354), go-smtp ends the empty
//     message with a lone "." first, never a body.
//   - A reply that breaks the connection (421, I/O error) ends the
//     exchange: the replies after it are not read, and the recipients
//     without a verdict so far stay pending, as without pipelining. A
//     reply out of step (outOfStep) leaves every recipient pending.
//
// Replies are read by the same client, through the same bounds (the
// client's 2,000-byte line limit, replyGuard's maxReplyBytes per reply,
// Timeouts.Command per reply), and DATA's 354 must be the last bytes the
// host sent before the body goes (replyGuard).
func (w *Worker) envelopePipelined(sc *smtpConn, env *queue.Envelope, idx []int, from string, dsn bool, tr *txResult) ([]int, *smtp.DataCommand) {
	var (
		send []int // recipients sent, in order
		pos  []int // their positions in idx
		tos  []string
		opts []*smtp.RcptOptions
	)
	for n, i := range idx {
		r := &env.Recipients[i]
		to, err := wirePath(r.Addr)
		if err != nil {
			tr.results[i] = resultOf(permanent(replyBadRecipient(err)), "")
			continue
		}
		send, pos = append(send, i), append(pos, n)
		tos, opts = append(tos, to), append(opts, rcptOptions(r, dsn))
	}
	if len(send) == 0 {
		return w.envelopeSequential(sc, env, idx, from, dsn, tr)
	}
	rep, wc, err := sc.c.MailPipelined(from, mailOptions(env, dsn), tos, opts)
	if err != nil {
		// Nothing was sent: an argument go-smtp refuses. The sequential
		// exchange meets the same refusal at the same command.
		return w.envelopeSequential(sc, env, idx, from, dsn, tr)
	}
	all := func(v verdict, which []int) { tr.set(v, sc.remote, which) }
	// The exchange ended between transactions unless DATA's reply says
	// otherwise: an error that ended it early stands for DATA too.
	lonedot := errors.Is(rep.Data, smtp.ErrDataWithoutRecipients)
	if lonedot {
		w.log.Debug("host accepted DATA with no recipient accepted; ended at once with a lone dot (RFC 2920 §3.1)",
			"id", env.ID, "remote", sc.remote)
	}
	settled := rep.Data == nil || lonedot || !classify(rep.Data).Broken
	mailBroken := rep.Mail != nil && classify(rep.Mail).Broken
	if !mailBroken && (outOfStep(rep) || (wc != nil && sc.guard.pending())) {
		// A reply whose code its command does not allow (354 to a RCPT,
		// 250 to DATA), bytes already waiting when a later group or the
		// lone dot was written (replyGuard's errOutOfStep), or bytes
		// already waiting after DATA's 354: the host answered more or
		// fewer commands than it was sent, and no reply of the group can
		// be told to be its command's, MAIL's refusal included (a MAIL
		// left unanswered makes the first RCPT's 550 read as MAIL's).
		// Every recipient stays pending, no body goes, the connection is
		// dropped (tr.reusable stays false). (A MAIL reply that ended the
		// exchange stands for every later command, and is kept below.)
		all(dropped(replyOutOfStep()), send)
		tr.early = true
		return nil, nil
	}
	if rep.Mail != nil {
		v := classify(rep.Mail)
		all(v, idx)
		tr.early, tr.reusable = v.Broken, !v.Broken && settled
		return nil, nil
	}
	var accepted []int
	for k, i := range send {
		err := rep.Rcpt[k]
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		v := classify(err)
		if v.Broken {
			n := pos[k]
			all(v, idx[n:])
			all(v, accepted)
			tr.early = n == 0
			return nil, nil
		}
		tr.results[i] = resultOf(v, sc.remote)
	}
	if wc != nil {
		return accepted, wc
	}
	// DATA refused (503/554 when no RCPT was accepted), or accepted and
	// ended with a lone dot: RSET and EHLO must now be answered in step,
	// or the verdicts above may be replies to other commands (a host that
	// answered one command twice).
	var reset error
	if settled {
		reset = sc.reset(w.o.Hostname)
		if resetOutOfStep(reset) {
			all(dropped(replyOutOfStep()), send)
			return nil, nil
		}
	}
	if len(accepted) > 0 {
		v := classify(rep.Data)
		all(v, accepted)
	}
	tr.reusable = settled && reset == nil
	return nil, nil
}

// outOfStep reports whether a reply to a pipelined RCPT or DATA has a
// code that command does not allow (neither its success code nor 4xx or
// 5xx), or the exchange ended at a write that found bytes answering no
// command waiting (errOutOfStep: the replies to the group before it, or to
// the whole group before the lone dot, were more than its commands).
func outOfStep(rep *smtp.PipelinedReplies) bool {
	odd := func(err error) bool {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se.Code < 400 || se.Code > 599
		}
		return errors.Is(err, errOutOfStep)
	}
	for _, err := range rep.Rcpt {
		if odd(err) {
			return true
		}
	}
	return odd(rep.Data)
}

// resetOutOfStep reports whether err, from RSET and EHLO after a
// pipelined group, shows the session out of step: bytes that answer no
// command were waiting (replyGuard), or a reply other than 250 that is
// not 421 (RFC 5321 §4.1.1.5: RSET is answered 250). A connection that
// merely closed does not say.
func resetOutOfStep(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code != 421
	}
	return errors.Is(err, errOutOfStep)
}
