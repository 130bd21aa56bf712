package relay

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// Users in every test's users file.
const (
	alice   = "alice@example.org"
	alicePW = "alice-secret"
	alias   = "a.example@example.org"
	bob     = "bob@example.org"
	bobPW   = "bob-secret"
)

// tokenBackend accepts the token "good-<user>" for user.
type tokenBackend struct{ down bool }

func (tokenBackend) Name() string { return "oidc" }
func (b tokenBackend) CheckToken(_ context.Context, tok string) (*auth.Identity, error) {
	if b.down {
		return nil, fmt.Errorf("%w: issuer unreachable", auth.ErrUnavailable)
	}
	if u, ok := strings.CutPrefix(tok, "good-"); ok {
		return &auth.Identity{User: u, Addresses: []string{u}, Backend: "oidc"}, nil
	}
	return nil, auth.ErrBadCredentials
}

// env is a running submission server on loopback with a real spool behind it.
type env struct {
	t        testing.TB
	srv      *Server
	q        *spool.Spool
	addr587  string
	addr465  string
	shutdown func()
}

type envOpt func(*Options)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	var b strings.Builder
	for _, u := range [][3]string{{alice, alicePW, alias}, {bob, bobPW, ""}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		fmt.Fprintf(&b, "%s:%s", u[0], h)
		if u[2] != "" {
			fmt.Fprintf(&b, ":%s", u[2])
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(users, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	fb, err := auth.NewFileBackend(users, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cert, err := SelfSigned("relay.test")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Hostname:        "relay.test",
		TLSConfig:       &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Auth:            auth.New(auth.Options{Password: []auth.PasswordBackend{fb}, Token: []auth.TokenBackend{tokenBackend{}}, FailureDelay: -1, MaxFailures: 100}),
		Queue:           q,
		MaxMessageBytes: 64 << 10,
		MaxRecipients:   3,
		CheckHeaderFrom: true,
		IdleTimeout:     10 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	a587, err := s.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	a465, err := s.Listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: s, q: q, addr587: a587.String(), addr465: a465.String()}
	var once sync.Once
	e.shutdown = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		})
	}
	t.Cleanup(e.shutdown)
	return e
}

// client is a raw SMTP client: it sends exactly what a test says, so the
// tests see every reply code, and can send what a well-behaved library
// never would.
type client struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func (e *env) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr587)
	if err != nil {
		e.t.Fatal(err)
	}
	cl := &client{t: e.t, conn: c, tp: textproto.NewConn(c)}
	e.t.Cleanup(func() { c.Close() })
	cl.expect(220)
	return cl
}

func wrapClient(t testing.TB, c net.Conn) *client {
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, tp: textproto.NewConn(c)}
}

func (e *env) dialTLS() *client {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.addr465, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		e.t.Fatal(err)
	}
	cl := &client{t: e.t, conn: c, tp: textproto.NewConn(c)}
	e.t.Cleanup(func() { c.Close() })
	cl.expect(220)
	return cl
}

// cmd sends a line and returns the reply code and text.
func (c *client) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("send %q: %v", fmt.Sprintf(format, args...), err)
	}
	return c.read()
}

func (c *client) read() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// expect sends nothing and checks the next reply.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, msg := c.read()
	if got != code {
		c.t.Fatalf("got %d %s, want %d", got, msg, code)
	}
	return msg
}

// must sends a command and requires a reply code (and enhanced code prefix).
func (c *client) must(code int, enh string, format string, args ...any) string {
	c.t.Helper()
	got, msg := c.cmd(format, args...)
	if got != code || enh != "" && !strings.HasPrefix(msg, enh) {
		c.t.Fatalf("%q: got %d %s, want %d %s", fmt.Sprintf(format, args...), got, msg, code, enh)
	}
	return msg
}

func (c *client) ehlo() string {
	c.t.Helper()
	return c.must(250, "", "EHLO client.test")
}

func (c *client) starttls() {
	c.t.Helper()
	c.must(220, "", "STARTTLS")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
}

func plain(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
}

// authed is the chain greeted → EHLO → STARTTLS → EHLO → AUTH PLAIN.
func (e *env) authed(user, pw string) *client {
	c := e.dial()
	c.ehlo()
	c.starttls()
	c.ehlo()
	c.must(235, "2.", "AUTH PLAIN %s", plain(user, pw))
	return c
}

// data sends DATA and the message (dot-stuffing is the caller's business:
// raw bytes go out as given, followed by CRLF.CRLF) and returns the reply.
func (c *client) data(msg string) (int, string) {
	c.t.Helper()
	c.must(354, "", "DATA")
	if _, err := io.WriteString(c.conn, msg+".\r\n"); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func message(from, to, extra string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: test\r\n" + extra + "\r\nHello.\r\n"
}

// queued returns the body of every message in the spool, by queue ID, and
// leaves them leased (stored, without the envelopes).
func (e *env) queued() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for id, m := range e.stored() {
		out[id] = m.body
	}
	return out
}

func newAuthWith(tb auth.TokenBackend) *auth.Authenticator {
	return auth.New(auth.Options{Token: []auth.TokenBackend{tb}, FailureDelay: -1, MaxFailures: 100})
}

// storedMsg is one message in the spool: its envelope and body.
type storedMsg struct {
	env  *queue.Envelope
	body string
}

// stored returns every message in the spool with its envelope, leaving
// them leased. The spool counts as empty when no lease comes within 200 ms.
func (e *env) stored() map[string]storedMsg {
	e.t.Helper()
	out := map[string]storedMsg{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		m, err := e.q.Lease(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			e.t.Fatal(err)
		}
		rc, err := e.q.Body(context.Background(), m)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[m.Envelope.ID] = storedMsg{env: m.Envelope, body: string(b)}
	}
}

// slowFailQueue makes a failed Enqueue return late, as a slow disk cleaning
// up after an aborted body would: it widens the window in which an aborted
// BDAT transaction's Data is still running while the next transaction
// starts, so races between them show deterministically.
type slowFailQueue struct {
	queue.Queue
	delay time.Duration
}

func (q slowFailQueue) Enqueue(ctx context.Context, env *queue.Envelope, r io.Reader) (string, error) {
	id, err := q.Queue.Enqueue(ctx, env, r)
	if err != nil {
		time.Sleep(q.delay)
	}
	return id, err
}

// queueID returns the queue ID from a "250 … queued as ID" reply text.
func queueID(msg string) string { return msg[strings.LastIndex(msg, " ")+1:] }
