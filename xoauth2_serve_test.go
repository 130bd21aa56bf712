package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// xoauth2Gateway is a loopback go-smtp server that offers AUTH XOAUTH2 only,
// after STARTTLS, as smtp.office365.com:587 does, and records each AUTH as
// "user token" and each recipient.
type xoauth2Gateway struct {
	addr  string
	mu    sync.Mutex
	auths []string
	rcpts chan string
}

func startXOAUTH2Gateway(t *testing.T, ca *testutil.CA) *xoauth2Gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &xoauth2Gateway{addr: ln.Addr().String(), rcpts: make(chan string, 16)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &xoauth2Session{g: g}, nil }))
	srv.Domain = "gw.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "127.0.0.1")}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return g
}

type xoauth2Session struct {
	g      *xoauth2Gateway
	authed bool
}

func (s *xoauth2Session) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *xoauth2Session) Auth(string) (sasl.Server, error) { return s, nil }

// Next takes the XOAUTH2 initial response; only tok-1 is a valid token.
func (s *xoauth2Session) Next(resp []byte) ([]byte, bool, error) {
	f := bytes.Split(resp, []byte("\x01"))
	if len(f) != 4 || !bytes.HasPrefix(f[0], []byte("user=")) || !bytes.HasPrefix(f[1], []byte("auth=Bearer ")) {
		return nil, true, errors.New("malformed")
	}
	s.g.mu.Lock()
	s.g.auths = append(s.g.auths, string(f[0][5:])+" "+string(f[1][12:]))
	s.g.mu.Unlock()
	if string(f[1][12:]) != "tok-1" {
		return nil, true, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
	}
	s.authed = true
	return nil, true, nil
}

func (s *xoauth2Session) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57}, Message: "Client not authenticated"}
	}
	return nil
}
func (s *xoauth2Session) Rcpt(to string, _ *smtp.RcptOptions) error { s.g.rcpts <- to; return nil }
func (s *xoauth2Session) Data(r io.Reader) error                    { _, err := io.Copy(io.Discard, r); return err }
func (s *xoauth2Session) Reset()                                    {}
func (s *xoauth2Session) Logout() error                             { return nil }

// TestServeXOAUTH2Microsoft365 runs the real wiring with the README's
// Microsoft 365 configuration, pointed at loopback stand-ins: a token
// endpoint that checks the client credentials and scope, and a gateway that
// requires AUTH XOAUTH2 after STARTTLS. Two messages are delivered with one
// token fetch, the gateway's token renewal metric counts it, and no log
// line holds the client secret or the token.
func TestServeXOAUTH2Microsoft365(t *testing.T) {
	const secret = "m365-client-secret-value-4711"
	var requests atomic.Int64
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		err := r.ParseForm()
		f := r.PostForm
		if err != nil || f.Get("grant_type") != "client_credentials" || f.Get("client_id") != "app-id" ||
			f.Get("client_secret") != secret || f.Get("scope") != "https://outlook.office365.com/.default" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3599}`)
	}))
	defer tokens.Close()
	ca := testutil.NewCA(t)
	gw := startXOAUTH2Gateway(t, ca)

	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "m365-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, subAddr := freeAddr(t), freeAddr(t)
	for k, v := range map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": httpAddr, "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": subAddr, "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:0", "RELAY_AUTH": "file",
		"RELAY_GATEWAY": "smtp://" + gw.addr, "RELAY_GATEWAY_CA_FILE": ca.PEMFile(t),
		"RELAY_GATEWAY_USERNAME":                 "relay@example.org",
		"RELAY_GATEWAY_OAUTH_TOKEN_URL":          tokens.URL + "/TENANT/oauth2/v2.0/token",
		"RELAY_GATEWAY_OAUTH_CLIENT_ID":          "app-id",
		"RELAY_GATEWAY_OAUTH_CLIENT_SECRET_FILE": secretFile,
		"RELAY_GATEWAY_OAUTH_SCOPE":              "https://outlook.office365.com/.default",
	} {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var c *smtp.Client
	for i := 0; ; i++ {
		if c, err = smtp.DialStartTLS(subAddr, &tls.Config{InsecureSkipVerify: true}); err == nil {
			break
		}
		if i == 250 {
			t.Fatalf("submission not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "a@example.org", "pw")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	for _, rcpt := range []string{"b@example.net", "c@example.net"} {
		msg := "From: <a@example.org>\r\nTo: <" + rcpt + ">\r\nSubject: xoauth2\r\n\r\nHello.\r\n"
		if err := c.SendMail("a@example.org", []string{rcpt}, strings.NewReader(msg)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	for range 2 {
		select {
		case <-gw.rcpts:
		case <-time.After(20 * time.Second):
			gw.mu.Lock()
			t.Fatalf("the gateway did not get both messages; AUTH seen: %q", gw.auths)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("token endpoint got %d requests, want 1", n)
	}
	gw.mu.Lock()
	for _, a := range gw.auths {
		if a != "relay@example.org tok-1" {
			t.Errorf("AUTH %q", a)
		}
	}
	gw.mu.Unlock()
	for i := 0; ; i++ {
		m := sample(scrape(t, httpAddr), "edgerelay_gateway_token_renewals_total", "gateway", "smtp://"+gw.addr)
		if m != nil && m.Counter.GetValue() == 1 {
			break
		}
		if i == 100 {
			t.Fatalf("edgerelay_gateway_token_renewals_total = %v, want 1", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range []string{secret, "tok-1"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log shows %q", s)
		}
	}
}
