package outbound

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// TestAttackTokenEndpointRedirectNotFollowed: a token endpoint that
// redirects is refused, not followed: a 307 or 308 makes Go's HTTP client
// post the same body (the client secret, or the signed assertion) again to
// wherever the Location says, which may be plain http to any host. The
// error names the status; nothing reaches the redirect's target.
func TestAttackTokenEndpointRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var got atomic.Int64
			var secretSeen atomic.Bool
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				b, _ := io.ReadAll(r.Body)
				if strings.Contains(string(b), testClientSecret) || strings.Contains(r.URL.String(), testClientSecret) {
					secretSeen.Store(true)
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`)
			}))
			defer target.Close()
			e := newTokenEndpoint(t)
			e.setFail(func(w http.ResponseWriter) {
				w.Header().Set("Location", target.URL+"/collect?s="+testClientSecret)
				w.WriteHeader(status)
			})
			ts := e.clientCredentials(5*time.Second, nil)
			tok, err := ts.Token(context.Background())
			if got.Load() != 0 || secretSeen.Load() {
				t.Errorf("the redirect was followed: %d requests to its target, secret seen %v", got.Load(), secretSeen.Load())
			}
			if err == nil {
				t.Fatalf("token %q from a redirect", tok)
			}
			if want := "the token endpoint answered HTTP " + strconv.Itoa(status); !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q, want it to end %q", err, want)
			}
			noSecret(t, err.Error())
		})
	}
}

// TestAttack535StormBounded: a gateway that refuses every token (535:
// the app lacks SMTP.SendAsApp, the mailbox is not allowed) with many
// messages queued costs the token endpoint a bounded number of fetches,
// not one per message attempt: a refusal renews the token (and AUTH is
// tried again) at most once per tokenRefusalRenewal, since a token
// fetched for a refusal and refused again shows that the gateway refuses
// tokens, not a stale one. Before, each attempt refused the token the
// previous one had fetched and fetched another (12 messages one after
// the other: 13 fetches). Nothing is bounced.
func TestAttack535StormBounded(t *testing.T) {
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			e := newTokenEndpoint(t)
			g := newAuthGateway(t, "XOAUTH2")
			g.tokens = func(string) bool { return false }
			h := authHarness(t, func(o *Options) { o.Concurrency = conc }, g.config(xoauth2Config(e.clientCredentials(5*time.Second, nil))))
			const n = 12
			for range n {
				h.enqueue(nil, bob)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.w.Run(ctx) }()
			for end := time.Now().Add(10 * time.Second); len(g.Auths()) < n+1 && time.Now().Before(end); {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			<-done
			auths, reqs := len(g.Auths()), e.requests.Load()
			if auths < n+1 {
				t.Fatalf("only %d AUTH for %d messages", auths, n)
			}
			if reqs != 2 {
				t.Errorf("%d token requests for %d AUTH of %d messages, want 2 (the first token and one renewal)", reqs, auths, n)
			}
			if len(h.rep.Calls()) > 0 {
				t.Errorf("reports: %+v", h.rep.Calls())
			}
		})
	}
}

// TestAttackRenewIfOncePerInterval: renewIf drops a refused token and
// says to try again; the token fetched for it, refused within
// tokenRefusalRenewal, is kept and AUTH not tried again; after the
// interval a refusal renews again. A late refusal of an old token says to
// try the cached one.
func TestAttackRenewIfOncePerInterval(t *testing.T) {
	e := newTokenEndpoint(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ts := e.clientCredentials(5*time.Second, clock)
	get := func(want string) {
		t.Helper()
		if tok, err := ts.Token(context.Background()); tok != want || err != nil {
			t.Fatalf("%q, %v; want %s", tok, err, want)
		}
	}
	get("tok-1")
	if !ts.renewIf("tok-1") {
		t.Error("first refusal: no retry")
	}
	get("tok-2")
	advance(tokenRefusalRenewal - time.Second)
	if ts.renewIf("tok-2") {
		t.Error("the renewed token refused within the interval: retry")
	}
	get("tok-2")
	if !ts.renewIf("tok-1") {
		t.Error("a late refusal of the old token: no retry with the cached one")
	}
	advance(time.Second)
	if !ts.renewIf("tok-2") {
		t.Error("refusal after the interval: no retry")
	}
	get("tok-3")
	if n := e.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// TestAttackRenewalFailureKeepsValidToken: a token is renewed a fifth of
// its lifetime early so that a token endpoint that fails then costs
// nothing: until the cached token expires it is still used (each call
// asks the endpoint again, one fetch at a time); only after its expiry is
// the failure the caller's.
func TestAttackRenewalFailureKeepsValidToken(t *testing.T) {
	e := newTokenEndpoint(t)
	clock := testutil.NewClock(time.Now())
	ts := e.clientCredentials(5*time.Second, clock.Now)
	if tok, err := ts.Token(context.Background()); tok != "tok-1" || err != nil {
		t.Fatalf("%q, %v", tok, err)
	}
	e.setFail(func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	clock.Advance(56 * time.Minute) // due for renewal, valid for 4 more minutes
	for range 2 {
		if tok, err := ts.Token(context.Background()); tok != "tok-1" || err != nil {
			t.Errorf("renewal failed before expiry: %q, %v; want tok-1", tok, err)
		}
	}
	if n := e.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (each call due for renewal asks)", n)
	}
	clock.Advance(5 * time.Minute) // expired
	if tok, err := ts.Token(context.Background()); err == nil {
		t.Errorf("expired token %q used", tok)
	}
	if st := ts.Stats(); st.Fetched != 1 || st.Failed != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestAttackTokenEndpointTLSFailure: a token endpoint whose certificate
// is not trusted gets no request body (the secret stays here), and the
// error says the certificate was refused, names the host, and holds no
// secret.
func TestAttackTokenEndpointTLSFailure(t *testing.T) {
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	var got atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	url := srv.URL + "/token"
	ts := NewTokens(ClientCredentialsFetch(url, testClientID, testClientSecret, []string{testScope}, 5*time.Second), url, 5*time.Second, nil)
	_, err := ts.Token(context.Background())
	host := strings.TrimPrefix(srv.URL, "https://")
	if want := "cannot get an OAuth2 access token from " + host + ": the token endpoint's TLS certificate was refused"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
	if err != nil {
		noSecret(t, err.Error())
	}
	if got.Load() != 0 {
		t.Errorf("%d requests reached the endpoint", got.Load())
	}
}

// TestAttackTokenEndpointNotTLS: an https token URL whose server speaks
// plain HTTP is a TLS failure, said so.
func TestAttackTokenEndpointNotTLS(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	url := "https://" + strings.TrimPrefix(srv.URL, "http://") + "/token"
	ts := NewTokens(ClientCredentialsFetch(url, testClientID, testClientSecret, []string{testScope}, 5*time.Second), url, 5*time.Second, nil)
	_, err := ts.Token(context.Background())
	if err == nil || !strings.HasSuffix(err.Error(), ": TLS with the token endpoint failed") {
		t.Errorf("error %v", err)
	}
}

// TestAttackExpiredOnArrivalNoStorm: a token endpoint whose tokens are
// expired when they arrive (a negative expires_in) does not make every
// AUTH fetch a token: such a token is kept for tokenExpiredKeep (the
// gateway judges it; a refusal renews it as any), then renewed.
func TestAttackExpiredOnArrivalNoStorm(t *testing.T) {
	e := newTokenEndpoint(t)
	e.expiresIn.Store(-60)
	clock := testutil.NewClock(time.Now())
	ts := e.clientCredentials(5*time.Second, clock.Now)
	for range 50 {
		if tok, err := ts.Token(context.Background()); tok != "tok-1" || err != nil {
			t.Fatalf("%q, %v", tok, err)
		}
	}
	clock.Advance(tokenExpiredKeep)
	if tok, err := ts.Token(context.Background()); tok != "tok-2" || err != nil {
		t.Fatalf("after %v: %q, %v; want tok-2", tokenExpiredKeep, tok, err)
	}
	if n := e.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}
