package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
)

// MXOptions turn on the inbound MX listener (ServeMX): mail from the
// Internet for the local domains, without AUTH, with opportunistic
// STARTTLS (the server's certificate), the same limits, PROXY protocol
// handling, checks and virus scanning (ScanOptions) as submission.
type MXOptions struct {
	// LocalDomains are the only domains accepted (NewLocalDomains).
	LocalDomains LocalDomains
	// Verify, when set, is asked whether each local recipient exists:
	// unknown is 550 5.1.1 at RCPT (nothing accepted that would bounce
	// later), an error 451 4.4.3.
	Verify RecipientVerifier
	// MaxConnectionsPerIP limits concurrent MX connections per client IP
	// (IPv6: per /64); 0: none. Options.MaxConnections bounds them in all.
	MaxConnectionsPerIP int
	// MessagesPerMinute limits the transactions (MAIL) per client IP and
	// minute, as a token bucket with that burst; 0: none. Past it: 421
	// 4.7.0 and the connection ends.
	MessagesPerMinute int
}

// RecipientVerifier says whether a local address exists (the identity
// store's addresses). An error means it could not say (a directory
// outage).
type RecipientVerifier interface {
	KnownAddress(ctx context.Context, addr string) (bool, error)
}

// MX replies.
var (
	errMXUnknownRcpt = reply(550, 5, 1, 1, "Recipient address unknown")
	errMXVerifyTemp  = reply(451, 4, 4, 3, "Recipient directory unavailable, try again later")
	errMXRate        = reply(421, 4, 7, 0, "Too many messages from your address, try again later")
)

// mxIdentity stands in for the (absent) authenticated user of an inbound
// transaction: its sender is not checked against it, and the envelope's
// User stays empty.
var mxIdentity = &auth.Identity{Backend: "mx"}

// mxVerifyTimeout bounds one recipient check.
const mxVerifyTimeout = 10 * time.Second

// mxPolicy is what an MX session needs beyond a submission session.
type mxPolicy struct {
	o    *MXOptions
	rate *ipRate
}

// ListenMX opens addr and serves the MX listener on it in the background.
func (s *Server) ListenMX(addr string) (net.Addr, error) {
	nl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.ServeMX(nl), nil
}

// ServeMX serves the MX listener on an open listener in the background.
// It needs Options.MX.
func (s *Server) ServeMX(nl net.Listener) net.Addr {
	if s.mxSMTP == nil {
		panic("relay: ServeMX without Options.MX")
	}
	return s.serve(nl, false, true)
}

// newMXSession is the MX go-smtp server's backend: a session with the MX
// policy, behind a type that offers no AUTH.
func (s *Server) newMXSession(c *smtp.Conn) (smtp.Session, error) {
	sess, err := s.newSession(c)
	if err != nil {
		return sess, err
	}
	ss := sess.(*session)
	ss.mx = s.mx
	ss.log = ss.log.With("listener", "mx")
	return &mxSession{ss: ss}, nil
}

// mxSession is the session of an MX connection. It does not implement
// smtp.AuthSession, so go-smtp neither offers nor accepts AUTH; it tells
// the connection about body reads as phasedSession does.
type mxSession struct{ ss *session }

func (m *mxSession) Mail(from string, opts *smtp.MailOptions) error { return m.ss.Mail(from, opts) }
func (m *mxSession) Rcpt(to string, opts *smtp.RcptOptions) error   { return m.ss.Rcpt(to, opts) }
func (m *mxSession) Reset()                                         { m.ss.Reset() }
func (m *mxSession) Logout() error                                  { return m.ss.Logout() }

func (m *mxSession) Data(r io.Reader) error {
	if tc := m.ss.tc; tc != nil {
		if _, bdat := r.(*io.PipeReader); bdat {
			gen := tc.startBDAT()
			defer tc.endBDAT(gen)
		} else {
			tc.startData()
		}
	}
	return m.ss.Data(r)
}

// mxMail is MAIL on the MX listener: any sender, the null one included
// (reports), within the per-IP message rate.
func (ss *session) mxMail(from string, opts *smtp.MailOptions) error {
	if ss.mx.rate != nil && ss.tc != nil && !ss.mx.rate.allow(ss.tc.limitKey) {
		ss.log.Warn("mail refused: message rate limit reached; closing", "limit_per_minute", ss.mx.o.MessagesPerMinute)
		ss.tc.closeAfterWrite.Store(true)
		return errMXRate
	}
	if err := ss.checkSender(from, opts); err != nil {
		return err
	}
	return ss.beginTxn(from, opts, mxIdentity)
}

// mxRcpt is RCPT on the MX listener: local domains only (mxRecipient),
// known recipients only when Verify is set.
func (ss *session) mxRcpt(to string, opts *smtp.RcptOptions) error {
	t := ss.txns.current()
	if t == nil {
		return errMXNoMail
	}
	if hasControl(to) {
		return errAddrControl
	}
	if err := checkRcptParams(opts); err != nil {
		return err
	}
	addr, err := mxRecipient(to, ss.mx.o.LocalDomains)
	if err != nil {
		if err == errRelayDenied {
			ss.log.Info("recipient refused: relaying denied", "rcpt", to, "from", t.from)
		}
		return err
	}
	if !isASCII(addr) && !t.opts.UTF8 {
		return errUTF8
	}
	if v := ss.mx.o.Verify; v != nil {
		ctx, cancel := context.WithTimeout(ss.srv.ctx, mxVerifyTimeout)
		known, err := v.KnownAddress(ctx, addr)
		cancel()
		switch {
		case err != nil:
			ss.log.Warn("recipient check failed: directory unavailable", "rcpt", addr, "err", err)
			return errMXVerifyTemp
		case !known:
			ss.log.Info("recipient refused: unknown", "rcpt", addr)
			return errMXUnknownRcpt
		}
	}
	ss.addRcpt(t, addr, opts)
	return nil
}

// errMXNoMail: RCPT outside a transaction (go-smtp refuses it first).
var errMXNoMail = reply(503, 5, 5, 1, "MAIL first")

// newMXServer makes the MX go-smtp server, or nil without Options.MX.
func (s *Server) newMXServer() error {
	o := s.opts.MX
	if o == nil {
		return nil
	}
	if len(o.LocalDomains) == 0 {
		return errors.New("relay: MX.LocalDomains is required")
	}
	s.mx = &mxPolicy{o: o}
	if o.MessagesPerMinute > 0 {
		s.mx.rate = newIPRate(o.MessagesPerMinute)
	}
	s.mxLimits = newConnLimits(s.opts.MaxConnections, o.MaxConnectionsPerIP)
	s.mxSMTP = s.newSMTP(smtp.BackendFunc(s.newMXSession), true)
	s.mxSMTP.AllowInsecureAuth = false
	return nil
}
