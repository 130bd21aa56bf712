package outbound

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackSecretsNeverShown sweeps the token endpoint's and the
// gateway's failures through a worker that logs at debug level: the
// endpoint echoing the client secret in an error body, answering 500 with
// a token in it, redirecting to a URL holding the secret, handing out a
// token that is not printable; and a gateway whose 535 echoes the bearer
// token it was sent. Neither the client secret nor an access token is in
// the recipient's reply, the log, the gateway status (/readyz) or the
// gateway events (metrics).
func TestAttackSecretsNeverShown(t *testing.T) {
	const leak = "tok-LEAKED-" + testClientSecret
	json := jsonAnswer
	for _, tc := range []struct {
		name  string
		fail  func(http.ResponseWriter)
		echo  bool // the gateway's 535 echoes the token
		reply string
	}{
		{"400 echoing the secret", json(400, `{"error":"invalid_client","error_description":"bad secret `+testClientSecret+`"}`), false, "454 4.7.0"},
		{"500 with a token", json(500, `{"access_token":"`+leak+`"}`), false, "454 4.7.0"},
		{"redirect holding the secret", func(w http.ResponseWriter) {
			w.Header().Set("Location", "http://127.0.0.1:1/?secret="+testClientSecret)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, false, "454 4.7.0"},
		{"token not printable", json(200, `{"access_token":"`+leak+`\u0001x","token_type":"Bearer"}`), false, "454 4.7.0"},
		{"gateway echoes the token", nil, true, "535 5.7.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEndpoint(t)
			if tc.fail != nil {
				e.setFail(tc.fail)
			}
			g := newAuthGateway(t, "XOAUTH2")
			g.tokens = func(string) bool { return false }
			if tc.echo {
				g.refuseText = func(tok string) string { return "token " + tok + " refused: " + tok }
			}
			var mu sync.Mutex
			var events []string
			h := authHarness(t, func(o *Options) {
				o.ObserveGateway = func(ev GatewayEvent) {
					mu.Lock()
					events = append(events, fmt.Sprintf("%+v", ev))
					mu.Unlock()
				}
			}, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
			h.enqueue(nil, bob)
			env := h.attempt()
			r := rcpt(t, env, bob)
			if r.Status != queue.StatusPending || r.Reply == nil || !strings.HasPrefix(r.Reply.String(), tc.reply) {
				t.Errorf("%s %q, want pending %s", r.Status, r.Reply, tc.reply)
			}
			var shown []string
			if r.Reply != nil {
				shown = append(shown, r.Reply.String())
			}
			shown = append(shown, h.log.String())
			for _, s := range h.w.GatewayStatus() {
				shown = append(shown, s.LastError)
			}
			mu.Lock()
			shown = append(shown, events...)
			mu.Unlock()
			for _, s := range shown {
				noSecret(t, s)
				if strings.Contains(s, "LEAKED") {
					t.Errorf("a token in %q", s)
				}
			}
		})
	}
}

// TestAttackRedacted: what a gateway echoes of a secret is cut from its
// reply; the code and the rest stay; other errors pass unchanged.
func TestAttackRedacted(t *testing.T) {
	se := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad pw hunter2 in " + b64("\x00u\x00hunter2")}
	got := redacted(se, "hunter2", b64("\x00u\x00hunter2"))
	var out *smtp.SMTPError
	if !errors.As(got, &out) || out.Code != 535 || out.Message != "bad pw [redacted] in [redacted]" {
		t.Errorf("%#v", got)
	}
	if se.Message == out.Message {
		t.Error("the original error was changed")
	}
	other := errors.New("hunter2")
	if redacted(other, "hunter2") != other || redacted(nil, "x") != nil {
		t.Error("a non-SMTP error changed")
	}
}
