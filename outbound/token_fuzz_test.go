package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// tokenErrorShape is every error text Tokens may produce: made here, the
// host and at most a registered OAuth2 error code from the endpoint.
var tokenErrorShape = regexp.MustCompile(`^cannot get an OAuth2 access token from 127\.0\.0\.1:\d+: (` +
	`the token endpoint answered HTTP \d{3}( \((invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type|invalid_scope)\))?` +
	`|the token endpoint's answer is not a token response|the token response has no access_token` +
	`|the access token is not printable ASCII|timed out waiting for the token endpoint|cannot reach the token endpoint)$`)

// FuzzTokenResponse: whatever the token endpoint answers (status, content
// type, body: not JSON, not UTF-8, NULs, huge, the secret echoed), Token
// returns within its bound either a token fit for the XOAUTH2 initial
// response or an error of a known shape that repeats nothing of the body
// but a registered error code, so never the secret.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=tok-1&token_type=bearer&expires_in=10`))
	f.Add(200, "application/json", []byte(`{"access_token":"a\u0001b"}`))
	f.Add(200, "application/json", []byte("{\"access_token\":\"\xff\xfe\"}"))
	f.Add(200, "application/json", []byte(`{"access_token":"tok","expires_in":-5}`))
	f.Add(200, "application/json", []byte(`{"access_token":"tok","expires_in":"99999999999999999999"}`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_client","error_description":"`+testClientSecret+`"}`))
	f.Add(401, "application/json", []byte(`{"error":"`+testClientSecret+`"}`))
	f.Add(500, "text/html", []byte("<html>\x00"+testClientSecret))
	f.Add(302, "text/plain", []byte(""))
	f.Add(200, "application/json", []byte(strings.Repeat("[", 100000)))
	f.Add(200, "application/json", []byte(`{"access_token":"`+strings.Repeat("x", 70000)+`"}`))

	var mu sync.Mutex
	var status int
	var ctype string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, ct, b := status, ctype, body
		mu.Unlock()
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(st)
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	url := srv.URL + "/token"

	f.Fuzz(func(t *testing.T, st int, ct string, b []byte) {
		if st < 200 || st > 599 {
			st = 200 + (st%400+400)%400
		}
		if !validHeaderValue(ct) {
			ct = "application/json"
		}
		mu.Lock()
		status, ctype, body = st, ct, b
		mu.Unlock()
		ts := NewTokens(ClientCredentialsFetch(url, testClientID, testClientSecret, []string{testScope}, 2*time.Second), url, 2*time.Second, nil)
		var tok string
		var err error
		testutil.ReturnsWithin(t, 5*time.Second, "Token", func() { tok, err = ts.Token(context.Background()) })
		if err != nil {
			var te *TokenError
			if !errors.As(err, &te) || !tokenErrorShape.MatchString(err.Error()) {
				t.Fatalf("error %q (%T) is not of a known shape", err, err)
			}
			return
		}
		if tok == "" || !validToken(tok) {
			t.Fatalf("token %q", tok)
		}
	})
}

// validHeaderValue reports whether s can be a header value for the test
// server (net/http refuses others).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return len(s) < 200
}

// FuzzXOAUTH2Challenge: whatever a gateway sends as an XOAUTH2 challenge,
// the client answers the first with an empty line and ends the exchange at
// the second, within a bound, and what it keeps for the log is short
// printable ASCII that never holds the token.
func FuzzXOAUTH2Challenge(f *testing.F) {
	f.Add([]byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`))
	f.Add([]byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`))
	f.Add([]byte("{\"status\":\"\xff\x00\"}"))
	f.Add([]byte(`{"status":` + strings.Repeat(`[`, 10000)))
	f.Add([]byte(`{"status":"` + strings.Repeat("4", 5000) + `"}`))
	f.Add([]byte("Username:"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ch []byte) {
		x := &xoauth2Client{user: "relay@example.org", token: "tok-secret-bearer"}
		l := newLoginClient("u", "gw-password")
		var (
			resp      []byte
			err, err2 error
			loginErrs [3]error
		)
		testutil.ReturnsWithin(t, 2*time.Second, "XOAUTH2 and LOGIN Next", func() {
			resp, err = x.Next(ch)
			_, err2 = x.Next(ch)
			for i := range loginErrs {
				_, loginErrs[i] = l.Next(ch)
			}
		})
		if err != nil || resp == nil || len(resp) != 0 {
			t.Fatalf("first challenge: %q, %v; want an empty answer", resp, err)
		}
		for _, s := range []string{x.challenge.Status, x.challenge.Schemes, x.challenge.Scope} {
			if len(s) > 100 || s != printable(s) || strings.Contains(s, "tok-secret") {
				t.Fatalf("kept %q", s)
			}
		}
		if err2 == nil {
			t.Fatal("a second challenge was answered")
		}
		for i, e := range loginErrs {
			if (e != nil) != (i == 2) {
				t.Fatalf("LOGIN challenge %d: %v", i+1, e)
			}
		}
	})
}

func ExampleTokenError() {
	fmt.Println(&TokenError{Host: "login.microsoftonline.com", Reason: "the token endpoint answered HTTP 401 (invalid_client)"})
	// Output: cannot get an OAuth2 access token from login.microsoftonline.com: the token endpoint answered HTTP 401 (invalid_client)
}
