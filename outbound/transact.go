package outbound

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// txResult is the outcome of one SMTP transaction (RFC 5321 §3.3) for the
// recipients given to transact.
type txResult struct {
	results map[int]result
	// reusable is set when the connection is between transactions and can
	// carry another message.
	reusable bool
	// early is set when the connection failed before any recipient got a
	// verdict (at MAIL or the first RCPT), so the same recipients can be
	// tried on another connection at once.
	early bool
}

// set gives each recipient in which the result of v from remote.
func (tr *txResult) set(v verdict, remote string, which []int) {
	for _, i := range which {
		tr.results[i] = resultOf(v, remote)
	}
}

// errBodyRead marks a failure to read the queued body (not the remote's).
type errBodyRead struct{ err error }

func (e *errBodyRead) Error() string { return "reading queued body: " + e.err.Error() }
func (e *errBodyRead) Unwrap() error { return e.err }

type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &errBodyRead{err}
	}
	return n, err
}

// maxBatches bounds the transactions one attempt makes on one connection
// for recipients refused with 452 "too many recipients".
const maxBatches = 10

// transactBatches runs transact and, while the host accepts some
// recipients and answers 452 for the rest (its recipient limit, RFC 5321
// §4.5.3.1.10), sends the rest in further transactions on the same
// connection instead of waiting for the next attempt.
func (w *Worker) transactBatches(ctx context.Context, sc *smtpConn, m *queue.Message, idx []int) txResult {
	tr := w.transact(ctx, sc, m, idx)
	for range maxBatches - 1 {
		var again []int
		progress := false
		for _, i := range idx {
			r := tr.results[i]
			switch {
			case r.status == queue.StatusPending && r.reply != nil && r.reply.Code == 452:
				again = append(again, i)
			case r.status != queue.StatusPending:
				progress = true
			}
		}
		if len(again) == 0 || !progress || !tr.reusable {
			break
		}
		next := w.transact(ctx, sc, m, again)
		for i, r := range next.results {
			tr.results[i] = r
		}
		tr.reusable = next.reusable
		idx = again
	}
	return tr
}

// transact sends message m to the recipients idx over sc: MAIL, one RCPT
// per recipient, DATA (in one write when the host offers PIPELINING,
// pipeline.go), the body streamed from the queue. Each RCPT
// reply decides its recipient (4xx pending, 5xx failed, RFC 5321 §4.2.1);
// the reply to the final dot decides every accepted recipient.
func (w *Worker) transact(ctx context.Context, sc *smtpConn, m *queue.Message, idx []int) txResult {
	env := m.Envelope
	c := sc.c
	tr := txResult{results: make(map[int]result, len(idx))}
	all := func(v verdict, which []int) { tr.set(v, sc.remote, which) }

	// A verdict before MAIL leaves the connection between transactions.
	before := func(v verdict) txResult {
		all(v, idx)
		tr.reusable = true
		return tr
	}
	if v := w.unfit(ctx, c, m); v != nil {
		return before(*v)
	}
	dsn, _ := c.Extension("DSN")

	body, err := w.q.Body(ctx, m)
	if err != nil {
		w.log.Error("cannot open queued body", "id", env.ID, "err", err)
		return before(temporary(replyBodyUnreadable()))
	}
	defer body.Close()

	// Every address goes to the next hop as wirePath writes it (RFC 5321
	// §4.1.2): go-smtp's client puts the string between < and > as it is.
	// process has failed the addresses it cannot write already.
	from, err := wirePath(env.From)
	if err != nil {
		return before(permanent(replyBadSender(err)))
	}
	// RFC 2920: with PIPELINING the envelope goes in one write
	// (pipeline.go); without it, one command per round trip.
	envelope := w.envelopeSequential
	if ok, _ := c.Extension("PIPELINING"); ok {
		envelope = w.envelopePipelined
	}
	accepted, wc := envelope(sc, env, idx, from, dsn, &tr)
	if wc == nil {
		return tr
	}
	if _, err := io.Copy(wc, bodyReader{body}); err != nil {
		// Never send the final dot after a short body: drop the connection
		// so that the remote discards the transaction (RFC 5321 §4.1.1.4).
		var be *errBodyRead
		v := classify(err)
		if errors.As(err, &be) {
			w.log.Error("cannot read queued body", "id", env.ID, "err", err)
			v = dropped(replyBodyUnreadable())
		}
		all(v, accepted)
		return tr
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		v := classify(err)
		all(v, accepted)
		tr.reusable = !v.Broken
		return tr
	}
	// RFC 3461 §4.3/§6.2.2: a hop that speaks DSN took over the duty to
	// report; one that does not leaves "relayed" for us to report.
	st := queue.StatusRelayed
	if dsn {
		st = queue.StatusDelivered
	}
	reply := replyFromText(250, resp.StatusText)
	for _, i := range accepted {
		tr.results[i] = result{status: st, reply: reply, remote: sc.remote}
	}
	tr.reusable = true
	return tr
}

// envelopeSequential sends MAIL, one RCPT per recipient in idx and DATA,
// each after the reply to the one before. It returns the recipients the
// host accepted and the DATA command to send the body with after a 354;
// when it returns no command, tr holds every recipient's result and
// whether the connection is reusable, and the transaction is over. Each
// RCPT reply decides its recipient (4xx pending, 5xx failed, RFC 5321
// §4.2.1); a reply that breaks the connection leaves the recipients
// without a verdict so far pending, and marks tr early when none had one.
func (w *Worker) envelopeSequential(sc *smtpConn, env *queue.Envelope, idx []int, from string, dsn bool, tr *txResult) ([]int, *smtp.DataCommand) {
	c := sc.c
	all := func(v verdict, which []int) { tr.set(v, sc.remote, which) }
	if err := c.Mail(from, mailOptions(env, dsn)); err != nil {
		v := classify(err)
		all(v, idx)
		tr.early, tr.reusable = v.Broken, !v.Broken
		return nil, nil
	}
	var accepted []int
	for n, i := range idx {
		r := &env.Recipients[i]
		to, err := wirePath(r.Addr)
		if err != nil {
			tr.results[i] = resultOf(permanent(replyBadRecipient(err)), "")
			continue
		}
		err = c.Rcpt(to, rcptOptions(r, dsn))
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		v := classify(err)
		if v.Broken {
			// The connection is gone: this recipient, those not tried yet
			// and those already accepted all stay pending. At the first
			// RCPT no recipient got a verdict yet, so the caller may try
			// them all on another connection at once (a pooled one that
			// died while idle).
			all(v, idx[n:])
			all(v, accepted)
			tr.early = n == 0
			return nil, nil
		}
		tr.results[i] = resultOf(v, sc.remote)
	}
	if len(accepted) == 0 {
		tr.reusable = sc.reset(w.o.Hostname) == nil
		return nil, nil
	}
	wc, err := c.Data()
	if err != nil {
		v := classify(err)
		all(v, accepted)
		tr.reusable = !v.Broken && sc.reset(w.o.Hostname) == nil
		return nil, nil
	}
	return accepted, wc
}

// unfit returns the verdict for a message that the hop on c cannot take
// as it announced itself in EHLO, or nil when it can.
func (w *Worker) unfit(ctx context.Context, c *smtp.Client, m *queue.Message) *verdict {
	env := m.Envelope
	verdictOf := func(v verdict) *verdict { return &v }
	// RFC 6531 §3.2: a message that needs SMTPUTF8 is not sent to a server
	// that does not offer it.
	if ok, _ := c.Extension("SMTPUTF8"); env.SMTPUTF8 && !ok {
		return verdictOf(permanent(replyNeedsSMTPUTF8()))
	}
	// RFC 1870 §6: a message larger than the advertised fixed maximum
	// would be refused anyway.
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && env.Size > int64(limit) {
		return verdictOf(permanent(replyTooBig(env.Size, limit)))
	}
	// RFC 6152 §3: no 8-bit body to a hop without 8BITMIME.
	if ok, _ := c.Extension("8BITMIME"); !ok {
		eight, err := w.has8BitBody(ctx, m)
		if err != nil {
			w.log.Error("cannot read queued body", "id", env.ID, "err", err)
			return verdictOf(temporary(replyBodyUnreadable()))
		}
		if eight {
			return verdictOf(permanent(replyNeeds8BitMIME()))
		}
	}
	return nil
}

// mailOptions are the MAIL FROM parameters for env. go-smtp adds
// BODY=8BITMIME (whatever Body says) and SIZE when the server offers them, SMTPUTF8 when asked
// (checked above), and RET/ENVID only when the server offers DSN.
func mailOptions(env *queue.Envelope, dsn bool) *smtp.MailOptions {
	o := &smtp.MailOptions{Size: env.Size, UTF8: env.SMTPUTF8}
	if env.Body8Bit {
		o.Body = smtp.Body8BitMIME
	}
	if !dsn {
		return o
	}
	switch strings.ToUpper(env.RET) {
	case "FULL":
		o.Return = smtp.DSNReturnFull
	case "HDRS":
		o.Return = smtp.DSNReturnHeaders
	}
	if env.EnvID != "" && printableASCII(env.EnvID) {
		o.EnvelopeID = env.EnvID
	}
	return o
}

// rcptOptions are the RCPT TO parameters for r: NOTIFY and ORCPT
// (RFC 3461 §4.1, §4.2), only when the server offers DSN. ORCPT is the
// client's own value, passed on as it was given (not re-rendered): go-smtp
// writes it as xtext or utf-8-addr-xtext/unitext, which encode space, '+',
// '=' and every control character, so it cannot end the parameter.
func rcptOptions(r *queue.Recipient, dsn bool) *smtp.RcptOptions {
	if !dsn {
		return nil
	}
	o := &smtp.RcptOptions{}
	for _, n := range r.Notify {
		o.Notify = append(o.Notify, smtp.DSNNotify(strings.ToUpper(n)))
	}
	if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok && addr != "" {
		switch strings.ToUpper(typ) {
		case "RFC822":
			if printableASCII(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return o
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
