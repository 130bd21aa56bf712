package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life, early time.Duration
	}{
		{time.Hour, 5 * time.Minute},      // the usual: 5 minutes early
		{24 * time.Hour, 5 * time.Minute}, // never more than 5 minutes early
		{10 * time.Minute, 2 * time.Minute},
		{time.Minute, 12 * time.Second}, // short: at 80% of the lifetime
		{2 * time.Second, 400 * time.Millisecond},
	} {
		if got := renewAt(t0, t0.Add(tc.life)); !got.Equal(t0.Add(tc.life - tc.early)) {
			t.Errorf("lifetime %v: renew at +%v, want +%v", tc.life, got.Sub(t0), tc.life-tc.early)
		}
	}
	if got := renewAt(t0, time.Time{}); !got.Equal(t0.Add(tokenNoExpiry)) {
		t.Errorf("no expiry: renew at +%v", got.Sub(t0))
	}
	if got := renewAt(t0, t0.Add(-time.Second)); !got.Equal(t0.Add(tokenExpiredKeep)) {
		t.Errorf("already expired: renew at +%v, want +%v", got.Sub(t0), tokenExpiredKeep)
	}
}

// TestTokensFetchedOnce: a hundred callers at once share one fetch, and
// later callers get the cached token without asking the endpoint.
func TestTokensFetchedOnce(t *testing.T) {
	e := newTokenEndpoint(t)
	e.delay = 50 * time.Millisecond // every caller arrives while the fetch runs
	ts := e.clientCredentials(5*time.Second, nil)
	var wg sync.WaitGroup
	toks := make([]string, 100)
	errs := make([]error, 100)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = ts.Token(context.Background())
		}()
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != "tok-1" {
			t.Fatalf("caller %d: %q, %v; want tok-1", i, toks[i], errs[i])
		}
	}
	for range 10 {
		if tok, err := ts.Token(context.Background()); tok != "tok-1" || err != nil {
			t.Fatalf("cached: %q, %v", tok, err)
		}
	}
	if n := e.requests.Load(); n != 1 {
		t.Errorf("token endpoint got %d requests, want 1", n)
	}
	if st := ts.Stats(); st.Fetched != 1 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	e.checkBad()
}

// TestTokensRenewedBeforeExpiry: an hour's token is used for 55 minutes,
// then renewed; a short one at 80% of its lifetime.
func TestTokensRenewedBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		expiresIn     int64
		stale, renews time.Duration
	}{
		{3600, 54 * time.Minute, 56 * time.Minute},
		{60, 47 * time.Second, 49 * time.Second},
	} {
		t.Run(fmt.Sprint(tc.expiresIn), func(t *testing.T) {
			e := newTokenEndpoint(t)
			e.expiresIn.Store(tc.expiresIn)
			clock := testutil.NewClock(time.Now())
			ts := e.clientCredentials(5*time.Second, clock.Now)
			get := func(want string) {
				t.Helper()
				if tok, err := ts.Token(context.Background()); tok != want || err != nil {
					t.Fatalf("%q, %v; want %s", tok, err, want)
				}
			}
			get("tok-1")
			clock.Advance(tc.stale)
			get("tok-1")
			clock.Advance(tc.renews - tc.stale)
			get("tok-2")
			get("tok-2")
			if n := e.requests.Load(); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
		})
	}
}

func TestTokensRenew(t *testing.T) {
	e := newTokenEndpoint(t)
	ts := e.clientCredentials(5*time.Second, nil)
	for i, want := range []string{"tok-1", "tok-1", "tok-2", "tok-2"} {
		if i == 2 {
			ts.Renew()
		}
		if tok, err := ts.Token(context.Background()); tok != want || err != nil {
			t.Fatalf("Token %d: %q, %v; want %s", i, tok, err, want)
		}
	}
}

// TestTokensRenewIf: two deliveries refused with the same stale token
// renew it once: the second finds the new token already cached.
func TestTokensRenewIf(t *testing.T) {
	e := newTokenEndpoint(t)
	ts := e.clientCredentials(5*time.Second, nil)
	get := func(want string) {
		t.Helper()
		if tok, err := ts.Token(context.Background()); tok != want || err != nil {
			t.Fatalf("%q, %v; want %s", tok, err, want)
		}
	}
	get("tok-1")
	ts.renewIf("tok-1")
	get("tok-2")
	ts.renewIf("tok-1") // a late refusal of the old token
	get("tok-2")
	if n := e.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestTokensEndpointFailures: whatever the endpoint does wrong, the error
// names its host and what happened, never the secret or the endpoint's
// body; a failed fetch is not cached (the next call asks again).
func TestTokensEndpointFailures(t *testing.T) {
	echo := jsonAnswer
	for _, tc := range []struct {
		name string
		fail func(http.ResponseWriter)
		want string
	}{
		{"500", echo(500, "internal error, your secret was "+testClientSecret), "the token endpoint answered HTTP 500"},
		{"401 invalid_client", echo(401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret `+testClientSecret+`"}`),
			"the token endpoint answered HTTP 401 (invalid_client)"},
		{"error code not a token", echo(400, `{"error":"bad\u0001code `+testClientSecret+`"}`), "the token endpoint answered HTTP 400"},
		{"not JSON", echo(200, "<html>"+testClientSecret), "the token endpoint's answer is not a token response"},
		{"no access_token", echo(200, `{"token_type":"Bearer"}`), "the token endpoint's answer is not a token response"},
		{"token with a control character", echo(200, `{"access_token":"a\u0001b","token_type":"Bearer"}`), "the access token is not printable ASCII"},
		{"token with a space", echo(200, `{"access_token":"a b","token_type":"Bearer"}`), "the access token is not printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEndpoint(t)
			e.setFail(tc.fail)
			ts := e.clientCredentials(5*time.Second, nil)
			host := strings.TrimPrefix(e.srv.URL, "http://")
			for range 2 {
				_, err := ts.Token(context.Background())
				var te *TokenError
				if !errors.As(err, &te) {
					t.Fatalf("error %v (%T), want a *TokenError", err, err)
				}
				want := "cannot get an OAuth2 access token from " + host + ": " + tc.want
				if err.Error() != want {
					t.Errorf("error %q\nwant      %q", err, want)
				}
				noSecret(t, err.Error())
			}
			if n := e.requests.Load(); n != 2 {
				t.Errorf("%d requests, want 2 (a failure is not cached)", n)
			}
			if st := ts.Stats(); st.Failed != 2 || st.Fetched != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestTokensEndpointDown(t *testing.T) {
	addr := testutil.FreeAddr(t) // nothing listens
	url := "http://" + addr + "/token"
	ts := NewTokens(ClientCredentialsFetch(url, testClientID, testClientSecret, nil, 5*time.Second), url, 5*time.Second, nil)
	_, err := ts.Token(context.Background())
	if want := "cannot get an OAuth2 access token from " + addr + ": cannot reach the token endpoint"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestTokensEndpointHangs: a token endpoint that accepts and never answers
// costs a caller no more than the fetch timeout, or its own deadline when
// that is sooner; the next caller after the timeout starts a new fetch.
func TestTokensEndpointHangs(t *testing.T) {
	e := newTokenEndpoint(t)
	e.hangAll()
	ts := e.clientCredentials(300*time.Millisecond, nil)
	testutil.ReturnsWithin(t, 2*time.Second, "Token with a hanging endpoint", func() {
		_, err := ts.Token(context.Background())
		if err == nil || !strings.HasSuffix(err.Error(), "timed out waiting for the token endpoint") {
			t.Errorf("error %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	testutil.ReturnsWithin(t, time.Second, "Token with a caller deadline", func() {
		if _, err := ts.Token(ctx); err == nil {
			t.Error("no error")
		}
	})
	if n := e.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestJWTGrant: the Google service-account grant signs a JWT that the
// endpoint verifies (signature, iss, sub, scope, aud), and its token is
// cached like any other.
func TestJWTGrant(t *testing.T) {
	e := newTokenEndpoint(t)
	key, err := ParseServiceAccountKey(e.serviceAccount("relay@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTokens(JWTFetch(key, "relay@example.org", 5*time.Second), key.TokenURI, 5*time.Second, nil)
	for range 3 {
		if tok, err := ts.Token(context.Background()); tok != "tok-1" || err != nil {
			t.Fatalf("%q, %v", tok, err)
		}
	}
	e.checkBad()
	// A subject the endpoint does not expect is refused: the check is real.
	ts = NewTokens(JWTFetch(key, "mallory@example.org", 5*time.Second), key.TokenURI, 5*time.Second, nil)
	if _, err := ts.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("wrong subject: %v", err)
	}
}

func TestJWTGrantEndpointHangs(t *testing.T) {
	e := newTokenEndpoint(t)
	key, err := ParseServiceAccountKey(e.serviceAccount("relay@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	e.hangAll()
	ts := NewTokens(JWTFetch(key, "relay@example.org", 300*time.Millisecond), key.TokenURI, 300*time.Millisecond, nil)
	testutil.ReturnsWithin(t, 2*time.Second, "JWT Token with a hanging endpoint", func() {
		if _, err := ts.Token(context.Background()); err == nil {
			t.Error("no error")
		}
	})
}

func TestParseServiceAccountKey(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{`, "not a JSON service-account key file"},
		{`{"type":"authorized_user","private_key":"` + testClientSecret + `"}`, `not a service-account key file ("type" is not "service_account")`},
		{`{"type":"service_account"}`, `the key file has no "client_email"`},
		{`{"type":"service_account","client_email":"a@b"}`, `the key file has no "private_key"`},
		{`{"type":"service_account","client_email":"a@b","private_key":"k"}`, `the key file has no "token_uri"`},
	} {
		if _, err := ParseServiceAccountKey([]byte(tc.json)); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %s", tc.json, err, tc.want)
		}
	}
}

// noSecret fails when s holds a test secret.
func noSecret(t testing.TB, s string) {
	t.Helper()
	for _, secret := range []string{testClientSecret, "tok-", "Bearer ", "PRIVATE KEY", "gw-password"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q appears in %q", secret, s)
		}
	}
}
