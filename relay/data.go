package relay

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// dataReaders holds the buffered readers, dataBufSize each, that Data reads
// messages through (issue 10: one allocated per message was two thirds of
// what a 10 KiB submission allocated). Data takes one and Resets it onto the
// message; when Data returns it is Reset onto nothing (dropping the
// message's readers and transaction) and put back. By then nothing uses it:
// only Data's goroutine reads it, readHeader copies what it keeps, and
// Enqueue reads the body on the calling goroutine and not after it returns
// (the spool and the SQS queue's S3 upload both read it synchronously).
var dataReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, dataBufSize) }}

// dataBufSize is the size of the buffer a message is read through.
const dataBufSize = 64 << 10

// Data reads the message, checks it, adds the submission fix-ups and queues
// it. The reply is 250 only once the queue says the message is durable.
//
// For BDAT it runs on its own goroutine (go-smtp): everything it needs comes
// from the transaction t it captures at its start, and nothing it does
// reaches a later transaction.
func (ss *session) Data(r io.Reader) error {
	t := ss.txns.current()
	if t == nil || t.id == nil || t.aborted.Load() {
		return errAuthRequired
	}
	defer ss.endTxn(t)
	defer ss.txns.dataStarted(t, r)()
	ss.txns.mu.Lock()
	rcpts := slices.Clone(t.rcpts)
	ss.txns.mu.Unlock()
	if len(rcpts) == 0 {
		return errNoRecipients
	}
	now := ss.srv.now()
	qid := queue.NewID()
	log := t.log.With("id", qid)

	cr := &crlfReader{r: abortGuard{r: r, t: t}}
	br := dataReaders.Get().(*bufio.Reader)
	br.Reset(cr)
	defer func() {
		br.Reset(nil)
		dataReaders.Put(br)
	}()
	fail := func(err error, what string) error {
		if cr.err != nil && !errors.Is(cr.err, io.EOF) {
			err = cr.err // the client's data was at fault, not the queue
		}
		if t.aborted.Load() || errors.Is(err, smtp.ErrDataReset) {
			// RSET, EHLO, an oversized chunk or a closed connection ended
			// the transaction: the client has had its reply already.
			log.Info("transaction aborted by the client", "stage", what)
			return errAborted
		}
		rep := dataErrorReply(err)
		if rep.Code/100 == 4 {
			ss.srv.accepted(t, AcceptQueueError)
		} else {
			ss.srv.accepted(t, AcceptRefused)
		}
		if rep == errQueue {
			log.Error("message not queued", "stage", what, "err", err)
		} else {
			log.Warn("message refused", "stage", what, "reply", rep.Code, "text", rep.Message)
		}
		return rep
	}

	h, err := readHeader(br)
	if err != nil {
		return fail(err, "header")
	}
	defer h.release() // as br: nothing reads the header after Enqueue
	if ss.srv.opts.CheckHeaderFrom && ss.mx == nil {
		// From, Sender, Resent-From and Resent-Sender: only the user's
		// addresses, in display names too unless that rule is off.
		if rep, addr := checkOriginators(h, t.id, ss.srv.opts.AllowAddressInDisplayName); rep != nil {
			if addr != "" {
				log.Warn("header originator not allowed", "address", addr)
			}
			return fail(rep, "header originator")
		}
	}
	fix := fixups(h, qid, ss.srv.opts.Hostname, now)
	rcptAddrs := make([]string, len(rcpts))
	for i, rc := range rcpts {
		rcptAddrs[i] = rc.Addr
	}
	trace := receivedField(traceInfo{
		helo: t.helo, remoteIP: ss.remoteIP, hostname: ss.srv.opts.Hostname, inbound: ss.mx != nil,
		queueID: qid, tls: t.tls, rcpts: rcptAddrs, now: now,
	})
	scan, scanField := ss.scanPlan(t)
	var msg io.Reader = &sizeLimit{
		r:   io.MultiReader(strings.NewReader(trace+scanField+fix.add), h.without(fix.drop), br),
		max: ss.srv.opts.MaxMessageBytes,
	}
	var sr *scanReader // the virus scan's verdict ends the body (scanreader.go)
	if scan != nil {
		sr = ss.srv.newScanReader(ss.srv.ctx, scan, msg, log, scanField != "")
		defer sr.close()
		msg = sr
	}
	// The guard again at the outside: whatever was buffered, the end of
	// the body is not reached for an aborted transaction.
	body := abortGuard{r: msg, t: t}

	env := &queue.Envelope{
		ID:         qid,
		From:       t.from,
		Recipients: rcpts,
		User:       t.id.User,
		RET:        string(t.opts.Return),
		EnvID:      t.opts.EnvelopeID,
		SMTPUTF8:   t.opts.UTF8 && needsSMTPUTF8(t.from, rcptAddrs, h.raw),
		Body8Bit:   t.opts.Body == smtp.Body8BitMIME,
		MessageID:  fix.msgID,
		Arrival:    now,
	}
	id, err := ss.srv.opts.Queue.Enqueue(ss.srv.ctx, env, body)
	if err != nil {
		return fail(ss.scanExplain(sr, t, err, log), "enqueue")
	}
	ss.srv.stats.queuedBytes.Add(uint64(env.Size))
	ss.srv.accepted(t, AcceptQueued)
	log.Info("queued", "from", t.from, "rcpts", len(env.Recipients), "size", env.Size, "message_id", fix.msgID)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// endTxn ends t at the reply to its data, if t is still the session's
// transaction (an aborted BDAT transaction's Data may end after the next
// transaction began).
func (ss *session) endTxn(t *txn) {
	if ss.txns.end(t) && ss.tc != nil {
		ss.tc.inTxn.Store(false)
	}
}

// needsSMTPUTF8 reports whether a message submitted with the SMTPUTF8
// parameter really needs it downstream: RFC 6531 concerns the envelope and
// the header section, so an all-ASCII envelope and header can go to a next
// hop without SMTPUTF8 (as Postfix's smtputf8_autodetect does). Clients
// such as Go's net/smtp send SMTPUTF8 whenever it is offered.
func needsSMTPUTF8(from string, rcpts []string, header []byte) bool {
	if !isASCII(from) || !isASCII(string(header)) {
		return true
	}
	for _, r := range rcpts {
		if !isASCII(r) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
