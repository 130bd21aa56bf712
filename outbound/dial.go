package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// tlsPolicy says how a connection is protected.
type tlsPolicy int

const (
	// tlsNone: plaintext, STARTTLS is not attempted.
	tlsNone tlsPolicy = iota
	// tlsOpportunistic: STARTTLS when the host offers it, without
	// certificate checks; plaintext when it does not, and plaintext again
	// on a new connection when the handshake fails (Postfix's "may" level;
	// RFC 7435 opportunistic security).
	tlsOpportunistic
	// tlsRequired: STARTTLS must be offered and must succeed (RFC 3207).
	tlsRequired
	// tlsImplicit: TLS from the first byte (RFC 8314 §3.3).
	tlsImplicit
)

// setupFailure is why connect could not bring a session to the point of
// MAIL: the verdict for the recipients, and, with plaintext set, that an
// opportunistic TLS handshake failed so that a connection without TLS is
// worth a try (RFC 7435).
type setupFailure struct {
	v         verdict
	plaintext bool
	// err is the I/O or protocol error behind v, for the log; nil when v
	// is a decision made here.
	err error
}

// ioFailure is the setupFailure for an I/O or protocol error: classify's.
func ioFailure(err error) *setupFailure { return &setupFailure{v: classify(err), err: err} }

// localFailure is the setupFailure for a decision made here.
func localFailure(v verdict) *setupFailure { return &setupFailure{v: v} }

// handshakeFailed is the setupFailure for an error from a TLS handshake.
func handshakeFailed(err error, plaintext bool) *setupFailure {
	return &setupFailure{v: classifyHandshake(err), plaintext: plaintext, err: err}
}

// target is one host to connect to.
type target struct {
	// addr is what is dialed: "192.0.2.1:25" (MX) or "smtp.example.net:587".
	addr string
	// host is the host's name: TLS server name and the RemoteMTA text.
	host string
	// ip is the address being dialed when it is known before dialing (MX).
	ip     string
	policy tlsPolicy
	tls    *tls.Config
	// auth is set for a gateway with credentials or a token source
	// (authFor); AUTH is then done over TLS only (gatewayauth.go).
	auth *GatewayAuthConfig
	// setup, when set, bounds each reply before MAIL (greeting, EHLO,
	// STARTTLS) in place of Timeouts.Command: a configured gateway that
	// stops answering must be found down quickly, so that its list fails
	// over (Timeouts.GatewaySetup).
	setup time.Duration
	// tokenFetched, when set, is called for each OAuth2 token that this
	// target's AUTH fetched (the gateway's token renewal metric).
	tokenFetched func()
}

// smtpConn is one SMTP connection, ready for MAIL.
type smtpConn struct {
	c      *smtp.Client
	raw    net.Conn
	remote string // RemoteMTA: "mx1.example.net [192.0.2.1]"
	tls    bool
	guard  *replyGuard // between the client and the connection
	stop   func() bool // stops the context.AfterFunc that closes raw
	idle   *time.Timer // set while the connection waits in the pool
	uses   int
}

// close drops the connection without QUIT.
func (s *smtpConn) close() {
	s.stop()
	s.raw.Close()
}

// reset ends the transaction (RSET, RFC 5321 §4.1.1.5) and greets the host
// again at once. go-smtp's Reset forgets the EHLO state, and its Extension
// and MaxMessageSize then send EHLO themselves and swallow a failure as
// "not offered": on a connection that died after RSET an SMTPUTF8 message
// would fail for good with 5.6.7 (issue 8 item 23). A connection for which
// reset returns an error is not reusable and must be closed, never pooled.
func (s *smtpConn) reset(hostname string) error {
	if err := s.c.Reset(); err != nil {
		return err
	}
	return s.c.Hello(hostname)
}

// quitTimeout bounds the wait for the reply to QUIT: nothing depends on
// it, and a host that no longer answers must not hold a shutdown (or the
// pool's eviction) for Timeouts.Command.
const quitTimeout = 5 * time.Second

// quit ends the session politely (QUIT, RFC 5321 §4.1.1.10) and closes it.
func (s *smtpConn) quit() {
	s.stop()
	s.c.CommandTimeout = min(s.c.CommandTimeout, quitTimeout)
	_ = s.c.Quit()
	s.raw.Close()
}

// timedConn sets a write deadline before every write, so that writing the
// message body (which the go-smtp client does without a deadline) cannot
// stall forever: RFC 5321 §4.5.3.2.5, "Data block: 3 minutes".
type timedConn struct {
	net.Conn
	write time.Duration
}

func (c *timedConn) Write(p []byte) (int, error) {
	if c.write > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.write))
	}
	return c.Conn.Write(p)
}

// replayConn hands the go-smtp client a synthetic greeting: the real one was
// already read (together with EHLO and STARTTLS) before the client took over,
// and the client insists on reading one before its EHLO.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func withGreeting(c net.Conn) net.Conn {
	return &replayConn{Conn: c, r: io.MultiReader(strings.NewReader("220 greeting already received\r\n"), c)}
}

// connect dials t and brings the session to the point where MAIL can be
// sent: greeting, EHLO, TLS as t.policy says, EHLO again, AUTH. A failure
// carries its verdict.
func (w *Worker) connect(ctx context.Context, t target) (*smtpConn, *setupFailure) {
	to := w.o.Timeouts
	dctx, cancel := context.WithTimeout(ctx, to.Connect)
	defer cancel()
	raw, err := w.dial(dctx, "tcp", t.addr)
	if err != nil {
		return nil, ioFailure(err)
	}
	sc := &smtpConn{raw: raw}
	sc.stop = context.AfterFunc(ctx, func() { raw.Close() })
	ok := false
	defer func() {
		if !ok {
			sc.close()
		}
	}()
	ip := t.ip
	if ip == "" {
		if ta, isTCP := raw.RemoteAddr().(*net.TCPAddr); isTCP {
			ip = ta.IP.String()
		} else {
			ip = raw.RemoteAddr().String()
		}
	}
	sc.remote = fmt.Sprintf("%s [%s]", t.host, ip)

	var conn net.Conn = &timedConn{Conn: raw, write: to.DataBlock}
	replay := false
	switch t.policy {
	case tlsImplicit:
		tc := tls.Client(conn, t.tls)
		_ = raw.SetDeadline(time.Now().Add(to.Connect))
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, handshakeFailed(err, false)
		}
		_ = raw.SetDeadline(time.Time{})
		conn, sc.tls = tc, true
	case tlsOpportunistic, tlsRequired:
		tc, f := w.startTLS(ctx, conn, t)
		if f != nil {
			return nil, f
		}
		if tc != nil {
			conn, sc.tls = tc, true
		}
		replay = true
	}
	if replay {
		conn = withGreeting(conn)
	}
	sc.guard = newReplyGuard(conn)
	c := smtp.NewClient(sc.guard)
	c.CommandTimeout = t.setupWait(to)
	c.SubmissionTimeout = to.Final
	sc.c = c
	err = c.Hello(w.o.Hostname)
	c.CommandTimeout = to.Command
	if err != nil {
		var se *smtp.SMTPError
		if t.policy == tlsOpportunistic && sc.tls && !errors.As(err, &se) {
			// With TLS 1.3 a failed handshake can surface only at the
			// first exchange over it (a certificate the host wanted).
			return nil, handshakeFailed(err, true)
		}
		return nil, ioFailure(err)
	}
	if t.auth != nil {
		if f := authenticate(ctx, c, t.auth, sc.tls, t.tokenFetched); f != nil {
			return nil, f
		}
	}
	ok = true
	return sc, nil
}

// setupWait is how long a reply before MAIL may take from t.
func (t target) setupWait(to Timeouts) time.Duration {
	if t.setup > 0 {
		return t.setup
	}
	return to.Command
}

// startTLS reads the greeting, sends EHLO and, when the host offers it,
// STARTTLS (RFC 3207), then does the TLS handshake. It returns nil and no
// failure when the session stays in plaintext (opportunistic policy,
// STARTTLS not offered or refused).
func (w *Worker) startTLS(ctx context.Context, conn net.Conn, t target) (*tls.Conn, *setupFailure) {
	to := w.o.Timeouts
	// The guard bounds each reply and keeps what the host sends beyond it:
	// the exchange must end between replies, since the client goes on
	// from here on the connection itself.
	g := newReplyGuard(conn)
	br := bufio.NewReader(g)
	tp := textproto.NewConn(struct {
		io.Reader
		io.WriteCloser
	}{br, g})
	plaintext := func() (*tls.Conn, *setupFailure) {
		if g.pending() || br.Buffered() > 0 {
			return nil, localFailure(dropped(replyOutOfStep()))
		}
		return nil, nil
	}
	wait := t.setupWait(to)
	read := func(expect int) (string, error) {
		_ = conn.SetDeadline(time.Now().Add(wait))
		_, msg, err := tp.ReadResponse(expect)
		var te *textproto.Error
		if errors.As(err, &te) {
			return "", smtpErrorFromText(te.Code, te.Msg)
		}
		return msg, err
	}
	cmd := func(expect int, line string) (string, error) {
		_ = conn.SetDeadline(time.Now().Add(wait))
		if err := tp.PrintfLine("%s", line); err != nil {
			return "", err
		}
		return read(expect)
	}
	if _, err := read(220); err != nil {
		return nil, ioFailure(err)
	}
	ehlo, err := cmd(250, "EHLO "+w.o.Hostname)
	if err != nil {
		var se *smtp.SMTPError
		if t.policy == tlsOpportunistic && errors.As(err, &se) && (se.Code == 500 || se.Code == 502) {
			// No ESMTP: the client falls back to HELO in plaintext.
			return plaintext()
		}
		return nil, ioFailure(err)
	}
	if !hasExtension(ehlo, "STARTTLS") {
		if t.policy == tlsRequired {
			return nil, localFailure(dropped(replyNoSTARTTLS()))
		}
		return plaintext()
	}
	if _, err := cmd(220, "STARTTLS"); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code == 421 {
			return nil, ioFailure(err)
		}
		if t.policy == tlsRequired {
			// The remote's refusal is kept, but it is not a verdict on the
			// recipients: retry later.
			return nil, &setupFailure{v: dropped(classify(err).Reply), err: err}
		}
		return plaintext()
	}
	if g.pending() || br.Buffered() > 0 {
		return nil, localFailure(dropped(replyDataBeforeTLS()))
	}
	tc := tls.Client(conn, t.tls)
	hctx, cancel := context.WithTimeout(ctx, to.Connect)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(to.Connect))
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, handshakeFailed(err, t.policy == tlsOpportunistic)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// hasExtension reports whether an EHLO reply text (first line the greeting,
// then one keyword per line) lists ext.
func hasExtension(ehlo, ext string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[min(1, len(lines)):] {
		kw, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		if strings.EqualFold(kw, ext) {
			return true
		}
	}
	return false
}
