package relay

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
)

// maxAuthFailures is how many failed AUTH attempts a session may make
// before it is closed with 421 4.7.0.
const maxAuthFailures = 3

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

// AuthMechanisms lists what the configured backends can do. go-smtp shows
// them only under TLS unless insecure AUTH is allowed (RFC 4954 §4: a
// server should not offer plaintext mechanisms without TLS).
func (ss *session) AuthMechanisms() []string {
	if ss.tls == nil && !ss.srv.opts.InsecureAuth {
		return nil
	}
	var m []string
	if ss.srv.opts.Auth.HasPassword() {
		m = append(m, mechPlain, mechLogin)
	}
	if ss.srv.opts.Auth.HasToken() {
		m = append(m, mechOAuthBearer, mechXOAuth2)
	}
	return m
}

// Auth starts a SASL exchange for mech.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.tls == nil && !ss.srv.opts.InsecureAuth {
		// go-smtp already refuses with 523 5.7.10; this is belt and braces.
		return nil, reply(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	}
	if ss.id != nil {
		return nil, reply(503, 5, 5, 1, "Already authenticated")
	}
	// The server's context: Shutdown cancels it, so a check against a
	// directory that hangs does not hold the shutdown (issue 8 item 15).
	// The backends bound each check with their own deadline.
	ctx := ss.srv.ctx
	user := ""
	password := func(authzid, u, pw string) error {
		user = u
		if authzid != "" && authzid != u {
			return errBadCreds // acting as someone else is not allowed
		}
		id, err := ss.srv.opts.Auth.Password(ctx, ss.remoteIP, u, pw)
		return ss.authOutcome(id, err)
	}
	token := func(u, tok string) error {
		user = u
		id, err := ss.srv.opts.Auth.Token(ctx, ss.remoteIP, u, tok)
		if id != nil {
			user = id.User
		}
		return ss.authOutcome(id, err)
	}
	var inner sasl.Server
	switch mech {
	case mechPlain:
		if ss.srv.opts.Auth.HasPassword() {
			inner = newPlainServer(password)
		}
	case mechLogin:
		if ss.srv.opts.Auth.HasPassword() {
			inner = &loginServer{check: password}
		}
	case mechOAuthBearer, mechXOAuth2:
		if ss.srv.opts.Auth.HasToken() {
			inner = &oauthServer{mech: mech, check: token}
		}
	}
	if inner == nil {
		return nil, errMechUnknown
	}
	return &saslOutcome{inner: inner, ss: ss, mech: mech, user: &user}, nil
}

// authOutcome maps a backend answer to the SMTP reply: an outage or the
// throttle is 454 4.7.0 (try again later), never 535, so a directory outage
// does not look like a wrong password.
func (ss *session) authOutcome(id *auth.Identity, err error) error {
	switch {
	case err == nil && id != nil:
		ss.id = id
		return nil
	case errors.Is(err, auth.ErrThrottled):
		return errAuthThrottle
	case errors.Is(err, auth.ErrUnavailable):
		return errAuthTempFail
	default:
		return errBadCreds
	}
}

// saslOutcome wraps a mechanism to log the outcome once and to count
// failures: the third ends the session (421 4.7.0, then close).
type saslOutcome struct {
	inner sasl.Server
	ss    *session
	mech  string
	user  *string
}

func (o *saslOutcome) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := o.inner.Next(resp)
	if !done {
		return ch, done, err
	}
	ss := o.ss
	if err == nil && ss.id != nil {
		ss.srv.stats.authOK.Add(1)
		ss.log = ss.log.With("user", ss.id.User)
		ss.log.Info("auth ok", "mech", o.mech, "backend", ss.id.Backend)
		return nil, true, nil
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		se = errAuthSyntax // a malformed exchange from the SASL library
	}
	if se.Code == 454 {
		ss.srv.stats.authTemp.Add(1)
	} else {
		ss.srv.stats.authFailed.Add(1)
	}
	ss.authFails++
	ss.log.Warn("auth failed", "mech", o.mech, "user", *o.user, "reply", se.Code, "failures", ss.authFails)
	if ss.authFails >= maxAuthFailures {
		if ss.tc != nil {
			ss.tc.closeAfterWrite.Store(true)
		}
		return nil, true, errAuthTooMany
	}
	return nil, true, se
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
	if ss.id == nil {
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
	if from == "" {
		return errNullSender
	}
	if hasControl(from) {
		return errAddrControl
	}
	if err := checkSenderPath(from); err != nil {
		return err
	}
	if err := checkMailParams(opts); err != nil {
		return err
	}
	if !isASCII(from) && (opts == nil || !opts.UTF8) {
		return errUTF8
	}
	// Sender alignment: the envelope sender must be one of the addresses
	// the identity store gives this user.
	if !ss.id.MaySend(from) {
		ss.log.Warn("mail refused: sender not allowed", "from", from)
		return errSenderDenied
	}
	t := &txn{from: from, id: ss.id, helo: ss.conn.Hostname(), tls: ss.tls, log: ss.log}
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
	return nil
}

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
	br := bufio.NewReaderSize(cr, 64<<10)
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
			ss.srv.stats.queueErrors.Add(1)
		} else {
			ss.srv.stats.refused.Add(1)
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
	if ss.srv.opts.CheckHeaderFrom {
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
		helo: t.helo, remoteIP: ss.remoteIP, hostname: ss.srv.opts.Hostname,
		queueID: qid, tls: t.tls, rcpts: rcptAddrs, now: now,
	})
	// The guard again at the outside: whatever was buffered, the end of
	// the body is not reached for an aborted transaction.
	body := abortGuard{r: &sizeLimit{
		r:   io.MultiReader(strings.NewReader(trace+fix.add), h.without(fix.drop), br),
		max: ss.srv.opts.MaxMessageBytes,
	}, t: t}

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
		return fail(err, "enqueue")
	}
	ss.srv.stats.queued.Add(1)
	ss.srv.stats.queuedBytes.Add(uint64(env.Size))
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
