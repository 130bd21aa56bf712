package outbound

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// authGateway is a real go-smtp server on 127.0.0.1 that offers STARTTLS
// (a certificate from a test CA), offers AUTH only after it (go-smtp's
// default), lists the mechanisms it is given, and takes MAIL only from an
// authenticated session: a gateway such as smtp.office365.com:587 or
// smtp.gmail.com:587.
type authGateway struct {
	t    *testing.T
	Addr string
	ca   *testutil.CA
	srv  *smtp.Server

	mechs    []string
	user     string
	password string
	// tokens accepts a bearer token for XOAUTH2; googleStyle refuses one
	// with a 334 error challenge first, as Gmail does (Microsoft answers
	// 535 at once).
	tokens      func(tok string) bool
	googleStyle bool
	// refuseText, when set, makes the text of a refusal from what was
	// refused (a token, or "password").
	refuseText func(secret string) string

	mu        sync.Mutex
	auths     []string // "MECH user secret-kind ok|refused" per AUTH
	authConns map[int]int
	connIDs   map[*smtp.Conn]int
	conns     int
	msgs      int
}

func newAuthGateway(t *testing.T, mechs ...string) *authGateway {
	t.Helper()
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &authGateway{t: t, Addr: ln.Addr().String(), ca: ca, mechs: mechs, authConns: map[int]int{}, connIDs: map[*smtp.Conn]int{},
		user: "relay@example.org", password: "gw-password"}
	g.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		// A session per EHLO (go-smtp makes a new one after STARTTLS);
		// connections are counted by their *smtp.Conn.
		g.mu.Lock()
		n, ok := g.connIDs[c]
		if !ok {
			g.conns++
			n = g.conns
			g.connIDs[c] = n
		}
		g.mu.Unlock()
		return &authGatewaySession{g: g, conn: n}, nil
	}))
	g.srv.Domain = "gw.test"
	g.srv.ErrorLog = nopLogger{}
	g.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "127.0.0.1")}}
	go g.srv.Serve(ln)
	t.Cleanup(func() { g.srv.Close() })
	return g
}

// config is the GatewayConfig for g with a: smtp://, STARTTLS required and
// verified against the test CA.
func (g *authGateway) config(a GatewayAuthConfig) GatewayConfig {
	return GatewayConfig{URL: "smtp://" + g.Addr, Addr: g.Addr, TLS: GatewayTLSStartTLS, TLSVerify: true,
		RootCAs: g.ca.Pool(), Auth: a}
}

func (g *authGateway) record(s string) {
	g.mu.Lock()
	g.auths = append(g.auths, s)
	g.mu.Unlock()
}

func (g *authGateway) Auths() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.auths...)
}

type authGatewaySession struct {
	g      *authGateway
	conn   int
	authed bool
}

var errAuthRefused = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication credentials invalid"}

func (s *authGatewaySession) AuthMechanisms() []string { return s.g.mechs }

func (s *authGatewaySession) Auth(mech string) (sasl.Server, error) {
	g := s.g
	check := func(kind, user string, ok bool) error {
		res := "refused"
		if ok {
			res, s.authed = "ok", true
		}
		g.record(mech + " " + user + " " + kind + " " + res)
		if !ok {
			if g.refuseText != nil {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: g.refuseText(kind)}
			}
			return errAuthRefused
		}
		g.mu.Lock()
		g.authConns[s.conn]++
		g.mu.Unlock()
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pw string) error {
			return check("password", user, user == g.user && pw == g.password)
		}), nil
	case sasl.Login:
		return &loginServer{check: func(user, pw string) error {
			return check("password", user, user == g.user && pw == g.password)
		}}, nil
	case AuthXOAUTH2:
		return &xoauth2Server{google: g.googleStyle, check: func(user, tok string) error {
			return check(tok, user, user == g.user && g.tokens != nil && g.tokens(tok))
		}}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

func (s *authGatewaySession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	return nil
}
func (s *authGatewaySession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *authGatewaySession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.g.mu.Lock()
	s.g.msgs++
	s.g.mu.Unlock()
	return nil
}
func (s *authGatewaySession) Reset()        {}
func (s *authGatewaySession) Logout() error { return nil }

// loginServer is the server side of LOGIN: "Username:", "Password:".
type loginServer struct {
	check func(user, pw string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // no initial response in LOGIN
			return nil, true, errors.New("unexpected initial response")
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

// xoauth2Server is the server side of XOAUTH2, Google's or Microsoft's.
type xoauth2Server struct {
	google  bool
	check   func(user, tok string) error
	refused bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.refused {
		// The client's empty answer to the error challenge.
		if len(resp) != 0 {
			return nil, true, errors.New("want an empty line after the error challenge")
		}
		return nil, true, errAuthRefused
	}
	user, rest, ok1 := bytes.Cut(resp, []byte("\x01"))
	auth, end, ok2 := bytes.Cut(rest, []byte("\x01"))
	if !ok1 || !ok2 || string(end) != "\x01" || !bytes.HasPrefix(user, []byte("user=")) || !bytes.HasPrefix(auth, []byte("auth=Bearer ")) {
		return nil, true, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "malformed XOAUTH2"}
	}
	err := x.check(string(user[5:]), string(auth[12:]))
	if err != nil && x.google {
		x.refused = true
		return []byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	return nil, true, err
}

func (g *authGateway) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns
}

func (g *authGateway) Msgs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.msgs
}

// onlyTok accepts the given tokens.
func onlyTok(toks ...string) func(string) bool {
	return func(tok string) bool {
		for _, t := range toks {
			if t == tok {
				return true
			}
		}
		return false
	}
}

// anyTok accepts every token the test endpoint hands out.
func anyTok(tok string) bool { return strings.HasPrefix(tok, "tok-") }
