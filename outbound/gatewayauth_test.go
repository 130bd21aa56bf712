package outbound

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// authHarness is a harness whose main gateway list is gws.
func authHarness(t *testing.T, extra func(*Options), gws ...GatewayConfig) *harness {
	return newHarness(t, combine(func(o *Options) { o.Gateways = gws }, extra))
}

// dropIdle ends the first gateway's idle connections, so that the next
// attempt connects (and authenticates) again.
func dropIdle(h *harness) {
	for sc := h.w.gatewayHop().pool.get(); sc != nil; sc = h.w.gatewayHop().pool.get() {
		sc.close()
	}
}

// checkRcpt checks bob's status and reply after an attempt, and that
// neither the reply nor the log holds a secret.
func checkRcpt(t *testing.T, h *harness, env *queue.Envelope, status queue.RcptStatus, reply string) {
	t.Helper()
	r := rcpt(t, env, bob)
	got := ""
	if r.Reply != nil {
		got = r.Reply.String()
	}
	if r.Status != status || !strings.HasPrefix(got, reply) {
		t.Errorf("%s: %s %q, want %s %q", bob, r.Status, got, status, reply)
	}
	noSecret(t, got)
	noSecret(t, h.log.String())
	if status == queue.StatusPending && len(h.rep.Calls()) > 0 {
		t.Errorf("reports for a pending recipient: %+v", h.rep.Calls())
	}
}

func TestAuthMechanismChosen(t *testing.T) {
	pw := GatewayAuthConfig{Username: "relay@example.org", Password: "gw-password"}
	with := func(a GatewayAuthConfig, mech string) GatewayAuthConfig { a.Mechanism = mech; return a }
	tokens := pw
	tokens.Password, tokens.Tokens = "", NewTokens(func(context.Context) (*oauth2.Token, error) { return nil, nil }, "https://login.test/token", 0, nil)
	for _, tc := range []struct {
		name   string
		mechs  []string
		a      GatewayAuthConfig
		status queue.RcptStatus
		reply  string
		auths  []string
	}{
		{"auto: PLAIN first", []string{"LOGIN", "PLAIN"}, pw, queue.StatusRelayed, "250", []string{"PLAIN relay@example.org password ok"}},
		{"auto: LOGIN when PLAIN is not offered", []string{"LOGIN"}, pw, queue.StatusRelayed, "250", []string{"LOGIN relay@example.org password ok"}},
		{"forced LOGIN", []string{"PLAIN", "LOGIN"}, with(pw, AuthLogin), queue.StatusRelayed, "250", []string{"LOGIN relay@example.org password ok"}},
		{"forced LOGIN not offered", []string{"PLAIN"}, with(pw, AuthLogin), queue.StatusPending,
			"451 4.7.4 credentials are configured for this host, but it does not offer AUTH LOGIN", nil},
		{"forced PLAIN not offered", []string{"LOGIN"}, with(pw, AuthPlain), queue.StatusPending,
			"451 4.7.4 credentials are configured for this host, but it does not offer AUTH PLAIN", nil},
		{"auto: neither offered", []string{"XOAUTH2"}, pw, queue.StatusPending,
			"451 4.7.4 credentials are configured for this host, but it does not offer AUTH PLAIN or LOGIN", nil},
		{"auto with a token source: XOAUTH2 not offered", []string{"PLAIN", "LOGIN"}, tokens, queue.StatusPending,
			"451 4.7.4 credentials are configured for this host, but it does not offer AUTH XOAUTH2", nil},
		{"forced XOAUTH2 without a token source", []string{"PLAIN", "XOAUTH2"}, with(pw, AuthXOAUTH2), queue.StatusPending,
			"454 4.7.0 cannot get an OAuth2 access token", nil},
		{"wrong password: pending, tried once", []string{"PLAIN"}, with(GatewayAuthConfig{Username: "relay@example.org", Password: "gw-password-old"}, ""),
			queue.StatusPending, "535 5.7.8 authentication credentials invalid", []string{"PLAIN relay@example.org password refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newAuthGateway(t, tc.mechs...)
			h := authHarness(t, nil, g.config(tc.a))
			h.enqueue(nil, bob)
			env := h.attempt()
			checkRcpt(t, h, env, tc.status, tc.reply)
			if got := g.Auths(); !slices.Equal(got, tc.auths) {
				t.Errorf("gateway saw AUTH %q, want %q", got, tc.auths)
			}
		})
	}
}

// xoauth2Config is the XOAUTH2 AUTH configuration with ts.
func xoauth2Config(ts TokenSource) GatewayAuthConfig {
	return GatewayAuthConfig{Username: "relay@example.org", Tokens: ts}
}

// TestXOAUTH2TokenFetchedOnce: many deliveries, several at once on their
// own connections, all authenticate with the one token fetched once.
func TestXOAUTH2TokenFetchedOnce(t *testing.T) {
	e := newTokenEndpoint(t)
	e.delay = 100 * time.Millisecond // the first connections all wait for it
	g := newAuthGateway(t, "PLAIN", "XOAUTH2")
	g.tokens = anyTok
	h := authHarness(t, func(o *Options) { o.Concurrency = 4 }, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
	const n = 12
	for range n {
		h.enqueue(nil, bob)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	for end := time.Now().Add(20 * time.Second); g.Msgs() < n && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := g.Msgs(); got != n {
		t.Fatalf("gateway got %d of %d messages", got, n)
	}
	if r := e.requests.Load(); r != 1 {
		t.Errorf("token endpoint got %d requests, want 1", r)
	}
	auths := g.Auths()
	if len(auths) < 2 {
		t.Errorf("only %d AUTH (connections), want several at once: %q", len(auths), auths)
	}
	for _, a := range auths {
		if a != "XOAUTH2 relay@example.org tok-1 ok" {
			t.Errorf("AUTH %q", a)
		}
	}
	e.checkBad()
	noSecret(t, h.log.String())
}

// TestXOAUTH2RenewedAfterExpiry: a connection made after the token is due
// for renewal authenticates with a new one.
func TestXOAUTH2RenewedAfterExpiry(t *testing.T) {
	e := newTokenEndpoint(t)
	e.expiresIn.Store(60)
	clock := testutil.NewClock(time.Now())
	g := newAuthGateway(t, "XOAUTH2")
	g.tokens = anyTok
	h := authHarness(t, nil, g.config(xoauth2Config(e.clientCredentials(5*time.Second, clock.Now))))
	for i, advance := range []time.Duration{0, 40 * time.Second, 10 * time.Second} {
		clock.Advance(advance)
		h.enqueue(nil, bob)
		checkRcpt(t, h, h.attempt(), queue.StatusRelayed, "250")
		dropIdle(h)
		t.Logf("attempt %d at +%v", i, advance)
	}
	want := []string{"XOAUTH2 relay@example.org tok-1 ok", "XOAUTH2 relay@example.org tok-1 ok", "XOAUTH2 relay@example.org tok-2 ok"}
	if got := g.Auths(); !slices.Equal(got, want) {
		t.Errorf("AUTH %q, want %q", got, want)
	}
	if r := e.requests.Load(); r != 2 {
		t.Errorf("%d token requests, want 2", r)
	}
}

// TestXOAUTH2RefusedTokenRenewedOnce: a gateway that refuses the cached
// token (revoked, or the app's permission changed) makes the relay fetch
// one new token and try AUTH again on the same session, Microsoft's way
// (535 at once) and Google's (an error challenge, an empty answer, 535).
func TestXOAUTH2RefusedTokenRenewedOnce(t *testing.T) {
	for _, google := range []bool{false, true} {
		t.Run(fmt.Sprintf("google=%v", google), func(t *testing.T) {
			e := newTokenEndpoint(t)
			g := newAuthGateway(t, "XOAUTH2")
			g.tokens, g.googleStyle = onlyTok("tok-2"), google
			var mu sync.Mutex
			var renewals []string
			h := authHarness(t, func(o *Options) {
				o.ObserveGateway = func(ev GatewayEvent) {
					if ev.Kind == GatewayTokenRenewal {
						mu.Lock()
						renewals = append(renewals, ev.Gateway)
						mu.Unlock()
					}
				}
			}, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
			h.enqueue(nil, bob)
			checkRcpt(t, h, h.attempt(), queue.StatusRelayed, "250")
			mu.Lock()
			if url := "smtp://" + g.Addr; !slices.Equal(renewals, []string{url, url}) {
				t.Errorf("token renewal events %q, want two for %s", renewals, url)
			}
			mu.Unlock()
			want := []string{"XOAUTH2 relay@example.org tok-1 refused", "XOAUTH2 relay@example.org tok-2 ok"}
			if got := g.Auths(); !slices.Equal(got, want) {
				t.Errorf("AUTH %q, want %q", got, want)
			}
			if n := g.Conns(); n != 1 {
				t.Errorf("%d connections, want the retry on the first", n)
			}
			// The renewed token is the cached one now.
			dropIdle(h)
			h.enqueue(nil, bob)
			checkRcpt(t, h, h.attempt(), queue.StatusRelayed, "250")
			if r := e.requests.Load(); r != 2 {
				t.Errorf("%d token requests, want 2", r)
			}
		})
	}
}

// TestXOAUTH2RefusedTwice: a gateway that refuses every token (the app
// lacks SMTP.SendAsApp, the mailbox is not allowed) costs one renewal per
// attempt, and the recipients stay pending with the gateway's reply: it is
// this relay's configuration that is wrong, never a bounce.
func TestXOAUTH2RefusedTwice(t *testing.T) {
	e := newTokenEndpoint(t)
	g := newAuthGateway(t, "XOAUTH2")
	g.tokens, g.googleStyle = onlyTok(), true
	h := authHarness(t, nil, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
	h.enqueue(nil, bob)
	checkRcpt(t, h, h.attempt(), queue.StatusPending, "535 5.7.8 authentication credentials invalid")
	if r, a := e.requests.Load(), len(g.Auths()); r != 2 || a != 2 {
		t.Errorf("%d token requests and %d AUTH, want 2 and 2", r, a)
	}
}

// TestXOAUTH2TokenEndpointDown: no token means no AUTH: the recipients
// stay pending with a 454 naming the token endpoint's host, and the
// gateway is down for its list, which delivers through the next gateway.
func TestXOAUTH2TokenEndpointDown(t *testing.T) {
	e := newTokenEndpoint(t)
	e.setFail(func(w http.ResponseWriter) { w.WriteHeader(500) })
	host := strings.TrimPrefix(e.srv.URL, "http://")
	g := newAuthGateway(t, "XOAUTH2")
	g.tokens = anyTok
	h := authHarness(t, nil, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
	h.enqueue(nil, bob)
	checkRcpt(t, h, h.attempt(), queue.StatusPending,
		"454 4.7.0 cannot get an OAuth2 access token from "+host+": the token endpoint answered HTTP 500")
	if a := g.Auths(); len(a) != 0 {
		t.Errorf("AUTH without a token: %q", a)
	}

	second := newAuthGateway(t, "PLAIN")
	h = authHarness(t, nil, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))),
		second.config(GatewayAuthConfig{Username: "relay@example.org", Password: "gw-password"}))
	h.enqueue(nil, bob)
	checkRcpt(t, h, h.attempt(), queue.StatusRelayed, "250")
	if second.Msgs() != 1 {
		t.Errorf("the second gateway got %d messages, want 1", second.Msgs())
	}
}

// TestXOAUTH2TokenEndpointHangs: a token endpoint that never answers holds
// an attempt no longer than the fetch timeout.
func TestXOAUTH2TokenEndpointHangs(t *testing.T) {
	e := newTokenEndpoint(t)
	e.hangAll()
	g := newAuthGateway(t, "XOAUTH2")
	h := authHarness(t, nil, g.config(xoauth2Config(e.clientCredentials(300*time.Millisecond, nil))))
	h.enqueue(nil, bob)
	var env *queue.Envelope
	testutil.ReturnsWithin(t, 5*time.Second, "an attempt with a hanging token endpoint", func() { env = h.attempt() })
	checkRcpt(t, h, env, queue.StatusPending, "454 4.7.0 cannot get an OAuth2 access token from 127.0.0.1:")
	if r := rcpt(t, env, bob).Reply.String(); !strings.HasSuffix(r, "timed out waiting for the token endpoint") {
		t.Errorf("reply %q", r)
	}
}

// TestXOAUTH2GoogleServiceAccount: Google Workspace's way, end to end: the
// JWT grant (verified by the endpoint) and XOAUTH2 as the subject, with
// Gmail's error challenge on a refused token.
func TestXOAUTH2GoogleServiceAccount(t *testing.T) {
	e := newTokenEndpoint(t)
	key, err := ParseServiceAccountKey(e.serviceAccount("relay@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	g := newAuthGateway(t, "PLAIN", "LOGIN", "XOAUTH2")
	g.tokens, g.googleStyle = onlyTok("tok-1"), true
	ts := NewTokens(JWTFetch(key, "relay@example.org", 5*time.Second), key.TokenURI, 5*time.Second, nil)
	h := authHarness(t, nil, g.config(xoauth2Config(ts)))
	h.enqueue(nil, bob)
	checkRcpt(t, h, h.attempt(), queue.StatusRelayed, "250")
	if got, want := g.Auths(), []string{"XOAUTH2 relay@example.org tok-1 ok"}; !slices.Equal(got, want) {
		t.Errorf("AUTH %q, want %q", got, want)
	}
	e.checkBad()
}
