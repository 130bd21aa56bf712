package relay

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
)

// settleTimeout bounds how long a new MAIL waits for an aborted BDAT
// transaction's Data to end (see txnState.settle); it normally takes
// microseconds, as the aborted Data's reads fail at once.
const settleTimeout = 30 * time.Second

// session is one SMTP connection's state, from EHLO to QUIT. go-smtp calls
// its methods from the connection's goroutine, except Data for BDAT, which
// runs on a goroutine of its own: the transaction's state is therefore kept
// in a *txn that Data captures (see txn.go), not in the session's fields.
type session struct {
	srv      *Server
	conn     *smtp.Conn
	tc       *trackedConn
	remoteIP string
	tls      *tls.ConnectionState
	log      *slog.Logger

	id        *auth.Identity
	authFails int
	// mx is set on the MX listener (mx.go): no AUTH, local recipients.
	mx *mxPolicy

	txns txnState
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	if s.draining.Load() {
		return nil, errShutdown
	}
	ss := &session{
		srv:      s,
		conn:     c,
		tc:       underlying(c.Conn()),
		remoteIP: remoteIP(c.Conn().RemoteAddr()),
	}
	if st, ok := c.TLSConnectionState(); ok {
		ss.tls = &st
	}
	// The session after STARTTLS settles a BDAT goroutine of the session
	// before it (possible only with InsecureAuth) like its own: the
	// connection keeps the watch (see txnState.settle).
	if ss.tc != nil {
		ss.txns.w = &ss.tc.bdat
		ss.tc.setTop(c.Conn())
	} else {
		ss.txns.w = &bdatWatch{settled: bdatResult(c)}
	}
	ss.log = s.log.With("remote", ss.remoteIP, "helo", c.Hostname(), "tls", ss.tls != nil)
	ss.log.Debug("session started")
	return ss, nil
}

// Mail starts a transaction. Relaying needs a successful AUTH; there is no
// other way (no IP allow-list): RFC 6409 §4.3 lets a submission server
// require authentication, and edgerelay always does.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.srv.draining.Load() {
		if ss.tc != nil {
			ss.tc.closeAfterWrite.Store(true)
		}
		return errShutdown
	}
	if ss.id == nil && ss.mx == nil {
		ss.log.Info("mail refused: not authenticated", "from", from)
		return errAuthRequired
	}
	if ss.txns.current() != nil {
		return errNestedMail
	}
	if !ss.txns.settle(bdatResult(ss.conn), settleTimeout) {
		// The previous transaction's Data has not ended (a queue that
		// does not return): start nothing new on this connection.
		ss.log.Error("previous BDAT transaction did not end; closing the connection")
		if ss.tc != nil {
			ss.tc.closeAfterWrite.Store(true)
		}
		return errQueue421
	}
	if ss.mx != nil {
		return ss.mxMail(from, opts)
	}
	if from == "" {
		return errNullSender
	}
	if err := ss.checkSender(from, opts); err != nil {
		return err
	}
	// Sender alignment: the envelope sender must be one of the addresses
	// the identity store gives this user.
	if !ss.id.MaySend(from) {
		ss.log.Warn("mail refused: sender not allowed", "from", from)
		return errSenderDenied
	}
	return ss.beginTxn(from, opts, ss.id)
}

// checkSender applies what every MAIL is checked for: control characters,
// a path the worker can write back, the parameters, a size the scanner
// takes, SMTPUTF8 for a non-ASCII sender. The null sender passes.
func (ss *session) checkSender(from string, opts *smtp.MailOptions) error {
	if hasControl(from) {
		return errAddrControl
	}
	if from != "" {
		if err := checkSenderPath(from); err != nil {
			return err
		}
	}
	if err := checkMailParams(opts); err != nil {
		return err
	}
	if err := ss.scanSizeAtMail(opts); err != nil {
		return err
	}
	if !isASCII(from) && (opts == nil || !opts.UTF8) {
		return errUTF8
	}
	return nil
}

// beginTxn opens the transaction of a MAIL that passed its checks.
func (ss *session) beginTxn(from string, opts *smtp.MailOptions, id *auth.Identity) error {
	t := &txn{from: from, id: id, helo: ss.conn.Hostname(), tls: ss.tls, log: ss.log, started: time.Now()}
	if opts != nil {
		t.opts = *opts
	}
	if !ss.txns.begin(t) {
		return errNestedMail
	}
	if ss.tc != nil {
		ss.tc.inTxn.Store(true)
	}
	return nil
}

// Rcpt adds a recipient with its DSN options (RFC 3461 §4).
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.mx != nil {
		return ss.mxRcpt(to, opts)
	}
	t := ss.txns.current()
	if ss.id == nil || t == nil {
		return errAuthRequired
	}
	if hasControl(to) {
		return errAddrControl
	}
	if err := checkRcptParams(opts); err != nil {
		return err
	}
	at := strings.LastIndexByte(to, '@')
	if at <= 0 || at == len(to)-1 {
		return errRcptSyntax
	}
	if err := checkRcptPath(to); err != nil {
		return err
	}
	if !isASCII(to) && !t.opts.UTF8 {
		return errUTF8
	}
	if !ss.srv.rate.allow(ss.id.LimitKey()) {
		ss.log.Warn("recipient refused: hourly rate limit reached", "rcpt", to, "limit", ss.srv.opts.MaxRecipientsPerHour)
		return errRateLimited
	}
	ss.addRcpt(t, to, opts)
	return nil
}

// addRcpt adds a recipient with its DSN options (RFC 3461 §4) to t.
func (ss *session) addRcpt(t *txn, to string, opts *smtp.RcptOptions) {
	r := queue.Recipient{Addr: to, Status: queue.StatusPending}
	if opts != nil {
		for _, n := range opts.Notify {
			r.Notify = append(r.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			typ := string(opts.OriginalRecipientType)
			if typ == "" {
				typ = "rfc822"
			}
			r.ORCPT = typ + ";" + opts.OriginalRecipient
		}
	}
	ss.txns.mu.Lock()
	t.rcpts = append(t.rcpts, r)
	ss.txns.mu.Unlock()
}

// Reset discards the transaction in progress (RSET, a new EHLO, an
// oversized BDAT chunk, or the end of DATA): a Data still reading it will
// not queue it.
func (ss *session) Reset() {
	ss.txns.abort()
	if ss.tc != nil {
		ss.tc.inTxn.Store(false)
	}
}

// Logout ends the session. A transaction still open is aborted (go-smtp
// calls Logout before it closes a BDAT pipe on STARTTLS).
func (ss *session) Logout() error {
	ss.txns.abort()
	ss.log.Debug("session ended") // also after STARTTLS, when go-smtp starts a new session
	return nil
}
