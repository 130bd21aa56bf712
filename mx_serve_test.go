package main

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// TestConfigMXErrors: the MX listener's variables are checked at start,
// each error naming its variable.
func TestConfigMXErrors(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RELAY_MX_ADDR": ":25"}, []string{"RELAY_LOCAL_DOMAINS: required", "RELAY_INBOUND_GATEWAY: required"}},
		{map[string]string{"RELAY_MX_ADDR": "25", "RELAY_LOCAL_DOMAINS": "example.org", "RELAY_INBOUND_GATEWAY": "mail:25"}, []string{"RELAY_MX_ADDR:"}},
		{map[string]string{"RELAY_LOCAL_DOMAINS": "example.org,[127.0.0.1]"}, []string{"RELAY_LOCAL_DOMAINS:", "[127.0.0.1]"}},
		{map[string]string{"RELAY_INBOUND_GATEWAY": "mail.internal"}, []string{"RELAY_INBOUND_GATEWAY:", "RELAY_LOCAL_DOMAINS: required"}},
		{map[string]string{"RELAY_MX_ADDR": ":25", "RELAY_LOCAL_DOMAINS": "example.org", "RELAY_INBOUND_GATEWAY": "mail:25", "RELAY_MX_VERIFY_RECIPIENTS": "true",
			"RELAY_AUTH": "oidc", "RELAY_OIDC_ISSUER": "https://sso.example.org", "RELAY_OIDC_AUDIENCE": "a"}, []string{"RELAY_MX_VERIFY_RECIPIENTS:"}},
		{map[string]string{"RELAY_MX_MESSAGES_PER_MINUTE": "-1"}, []string{"RELAY_MX_MAX_CONNECTIONS_PER_IP:"}},
	} {
		t.Run("", func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig()
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %v lacks %q", tt.env, err, w)
				}
			}
		})
	}
}

// TestMXServe: the real wiring with the MX listener. Mail from the
// Internet for a local, known recipient reaches only the inbound gateway;
// an unknown local recipient is 550 5.1.1 and another domain 550 5.7.1;
// a user's submission to a colleague goes to the inbound gateway too, and
// only mail for other domains reaches the outbound gateway.
func TestMXServe(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users := "a@example.org:" + string(h) + "\nb@example.org:" + string(h) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	outAddr, out := startSink(t)
	inAddr, in := startSink(t)
	mxAddr, subAddr := freeAddr(t), freeAddr(t)
	startServe(t, map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": "", "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": subAddr, "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:0",
		"RELAY_AUTH": "file", "RELAY_GATEWAY": outAddr, "RELAY_GATEWAY_TLS": "none",
		"RELAY_MX_ADDR": mxAddr, "RELAY_LOCAL_DOMAINS": "Example.ORG", "RELAY_INBOUND_GATEWAY": inAddr,
		"RELAY_MX_VERIFY_RECIPIENTS": "true",
	})
	c := dialUp(t, mxAddr)
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered on the MX listener")
	}
	const msg = "From: <sender@internet.example>\r\nTo: <a@example.org>\r\nSubject: inbound\r\n\r\nHello.\r\n"
	var se *smtp.SMTPError
	if err := c.Mail("sender@internet.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.org", nil); !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("unknown local recipient: %v", err)
	}
	if err := c.Rcpt("someone@other.example", nil); !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("other domain: %v", err)
	}
	if err := c.Rcpt("A@EXAMPLE.org", nil); err != nil {
		t.Fatalf("local recipient: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(msg))
	if err := w.Close(); err != nil {
		t.Fatalf("inbound data: %v", err)
	}
	c.Quit()
	wantRcpt(t, in, "A@example.org")

	s, err := smtp.DialStartTLS(subAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Auth(sasl.NewPlainClient("", "a@example.org", "pw")); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"b@example.org", "friend@internet.example"} {
		body := "From: <a@example.org>\r\nTo: <" + to + ">\r\nSubject: out\r\n\r\nHi.\r\n"
		if err := s.SendMail("a@example.org", []string{to}, strings.NewReader(body)); err != nil {
			t.Fatalf("submit to %s: %v", to, err)
		}
	}
	s.Quit()
	wantRcpt(t, in, "b@example.org")
	wantRcpt(t, out, "friend@internet.example")
	select {
	case r := <-out:
		t.Fatalf("the outbound gateway also got %q", r)
	case r := <-in:
		t.Fatalf("the inbound gateway also got %q", r)
	case <-time.After(500 * time.Millisecond):
	}
}

func wantRcpt(t *testing.T, got chan string, want string) {
	t.Helper()
	select {
	case r := <-got:
		if r != want {
			t.Fatalf("sink got %q, want %q", r, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s was not delivered", want)
	}
}
