package outbound

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// step is one scripted answer of the test SMTP server: a reply, a dropped
// connection, or a stall (no answer until the test ends).
type step struct {
	code  int
	enh   smtp.EnhancedCode
	text  string
	drop  bool
	stall bool
}

var (
	stepOK    = step{code: 250}
	stepDrop  = step{drop: true}
	stepStall = step{stall: true}
)

// replyStep is a scripted reply "code enhanced text".
func replyStep(code int, enhanced, text string) step {
	s := step{code: code, text: text}
	fmt.Sscanf(enhanced, "%d.%d.%d", &s.enh[0], &s.enh[1], &s.enh[2])
	return s
}

// script hands out steps in order; the last one repeats. Empty means OK.
type script []step

func (s script) at(n int) step {
	if len(s) == 0 {
		return stepOK
	}
	return s[min(n, len(s)-1)]
}

// received is one message the server accepted (or was sent DATA for).
type received struct {
	Conn     int
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	RcptOpts map[string]smtp.RcptOptions
	Body     []byte
	User     string
	TLS      bool
}

// scriptServer is a real go-smtp server on 127.0.0.1 whose replies follow
// per-stage and per-recipient scripts, and which records what it got.
type scriptServer struct {
	t    *testing.T
	Addr string
	// CertPool trusts the server's self-signed certificate (TLS servers).
	CertPool *x509.CertPool

	srv    *smtp.Server
	ln     net.Listener
	stallc chan struct{}
	noPipe bool // set before Serve, read by Accept

	mu       sync.Mutex
	greet    script            // one step per connection
	mail     script            // one step per MAIL
	rcpt     map[string]script // one step per RCPT of that address
	data     script            // one step per DATA
	user     string            // AUTH PLAIN credentials, when set
	password string
	conns    int
	nMail    int
	nRcpt    map[string]int
	nData    int
	msgs     []received
	auths    []string // usernames of AUTH attempts
}

// serverOpt configures a scriptServer.
type serverOpt func(*scriptServer)

func withTLS() serverOpt {
	return func(s *scriptServer) { s.srv.TLSConfig, s.CertPool = selfSigned(s.t) }
}
func withImplicitTLS() serverOpt {
	return func(s *scriptServer) { withTLS()(s); s.ln = tls.NewListener(s.ln, s.srv.TLSConfig) }
}
func withDSN() serverOpt      { return func(s *scriptServer) { s.srv.EnableDSN = true } }
func withSMTPUTF8() serverOpt { return func(s *scriptServer) { s.srv.EnableSMTPUTF8 = true } }
func withMaxSize(n int64) serverOpt {
	return func(s *scriptServer) { s.srv.MaxMessageBytes = n }
}
func withAuth(user, password string) serverOpt {
	return func(s *scriptServer) { s.user, s.password = user, password }
}

// withoutPipelining hides PIPELINING, which go-smtp's server always
// offers, from its EHLO reply: the client then sends one command per
// round trip.
func withoutPipelining() serverOpt      { return func(s *scriptServer) { s.noPipe = true } }
func withGreet(steps ...step) serverOpt { return func(s *scriptServer) { s.greet = steps } }
func withMail(steps ...step) serverOpt  { return func(s *scriptServer) { s.mail = steps } }
func withData(steps ...step) serverOpt  { return func(s *scriptServer) { s.data = steps } }
func withRcpt(addr string, steps ...step) serverOpt {
	return func(s *scriptServer) { s.rcpt[addr] = steps }
}

func newScriptServer(t *testing.T, opts ...serverOpt) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{t: t, ln: ln, Addr: ln.Addr().String(), stallc: make(chan struct{}),
		rcpt: make(map[string]script), nRcpt: make(map[string]int)}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "gw.test"
	s.srv.ErrorLog = nopLogger{}
	for _, o := range opts {
		o(s)
	}
	go s.srv.Serve(&greetListener{Listener: s.ln, s: s})
	t.Cleanup(func() {
		close(s.stallc)
		s.srv.Close()
	})
	return s
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

// greetListener counts connections and plays the greeting script: a
// connection whose step is not OK gets that reply (or nothing) and is closed
// before go-smtp sees it.
type greetListener struct {
	net.Listener
	s *scriptServer
}

func (l *greetListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		st := l.s.greet.at(l.s.conns)
		l.s.conns++
		l.s.mu.Unlock()
		switch {
		case st.stall:
			go func() { <-l.s.stallc; c.Close() }()
		case st.drop:
			c.Close()
		case st.code != 250 && st.code != 220:
			fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", st.code, st.enh[0], st.enh[1], st.enh[2], st.text)
			c.Close()
		default:
			if l.s.noPipe {
				return noPipeConn{c}, nil
			}
			return c, nil
		}
	}
}

// noPipeConn drops the PIPELINING line from what the server writes (its
// EHLO reply is written in one piece).
type noPipeConn struct{ net.Conn }

func (c noPipeConn) Write(p []byte) (int, error) {
	q := bytes.Replace(p, []byte("250-PIPELINING\r\n"), nil, 1)
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Conns is the number of connections accepted so far.
func (s *scriptServer) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Received returns copies of the messages received so far.
func (s *scriptServer) Received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// Auths returns the usernames of the AUTH attempts so far.
func (s *scriptServer) Auths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

func (s *scriptServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	id := s.conns
	s.mu.Unlock()
	_, isTLS := c.TLSConnectionState()
	return &scriptSession{s: s, c: c, conn: id, tls: isTLS}, nil
}

// play acts out st: nil for OK, an *smtp.SMTPError for a reply.
func (s *scriptServer) play(c *smtp.Conn, st step) error {
	switch {
	case st.stall:
		<-s.stallc
		return errors.New("stalled")
	case st.drop:
		c.Conn().Close()
		return errors.New("dropped")
	case st.code == 250 || st.code == 0:
		return nil
	}
	return &smtp.SMTPError{Code: st.code, EnhancedCode: st.enh, Message: st.text}
}

type scriptSession struct {
	s    *scriptServer
	c    *smtp.Conn
	conn int
	tls  bool
	user string
	msg  received
}

func (ss *scriptSession) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *scriptSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.s.mu.Lock()
		ss.s.auths = append(ss.s.auths, username)
		ss.s.mu.Unlock()
		if username != ss.s.user || password != ss.s.password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *scriptSession) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.user != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.s.mu.Lock()
	st := ss.s.mail.at(ss.s.nMail)
	ss.s.nMail++
	ss.s.mu.Unlock()
	if err := ss.s.play(ss.c, st); err != nil {
		return err
	}
	ss.msg = received{Conn: ss.conn, From: from, RcptOpts: map[string]smtp.RcptOptions{}, User: ss.user, TLS: ss.tls}
	if opts != nil {
		ss.msg.MailOpts = *opts
	}
	return nil
}

func (ss *scriptSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	st := ss.s.rcpt[to].at(ss.s.nRcpt[to])
	ss.s.nRcpt[to]++
	ss.s.mu.Unlock()
	if err := ss.s.play(ss.c, st); err != nil {
		return err
	}
	ss.msg.Rcpts = append(ss.msg.Rcpts, to)
	if opts != nil {
		ss.msg.RcptOpts[to] = *opts
	}
	return nil
}

func (ss *scriptSession) Data(r io.Reader) error {
	ss.s.mu.Lock()
	st := ss.s.data.at(ss.s.nData)
	ss.s.nData++
	ss.s.mu.Unlock()
	if st.drop {
		// Take part of the body, then hang up mid-DATA.
		io.CopyN(io.Discard, r, 10)
		ss.c.Conn().Close()
		return errors.New("dropped")
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := ss.s.play(ss.c, st); err != nil {
		return err
	}
	ss.msg.Body = body
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.msg)
	ss.s.mu.Unlock()
	return nil
}

func (ss *scriptSession) Reset()        { ss.msg = received{} }
func (ss *scriptSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1, localhost and gw.test,
// and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ca := testutil.NewCA(t)
	return &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "gw.test", "localhost", "127.0.0.1")}}, ca.Pool()
}

// bodyHas reports whether a received body contains s.
func (r received) bodyHas(s string) bool { return bytes.Contains(r.Body, []byte(s)) }

// rcptList is the recipients of r, sorted as received, joined by ",".
func (r received) rcptList() string { return strings.Join(r.Rcpts, ",") }
