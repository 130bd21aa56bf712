package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Token cache timing. A token is renewed ahead of its expiry by a fifth of
// its lifetime, at most tokenEarly, so that one fetched for an hour (the
// usual lifetime at Microsoft and Google) is renewed 5 minutes before it
// expires and one fetched for a minute 12 seconds before; a token without
// expires_in is kept for tokenNoExpiry (a 535 renews it sooner).
const (
	tokenEarly    = 5 * time.Minute
	tokenNoExpiry = time.Hour
	// DefaultTokenTimeout bounds one fetch from the token endpoint.
	DefaultTokenTimeout = 30 * time.Second
	// tokenRefusalRenewal: a gateway's refusal renews the token at most
	// once in this time (renewIf).
	tokenRefusalRenewal = time.Minute
	// tokenExpiredKeep: a token expired when it arrived (a negative
	// expires_in) is kept this long, not fetched again at every AUTH.
	tokenExpiredKeep = 30 * time.Second
)

// FetchFunc fetches a new token from the OAuth2 token endpoint: a
// clientcredentials.Config's Token, or a JWT grant's (NewJWTFetch). It must
// return within ctx's deadline; the HTTP client it uses should have the
// same bound (golang.org/x/oauth2/jwt ignores ctx's deadline).
type FetchFunc func(ctx context.Context) (*oauth2.Token, error)

// Tokens is the TokenSource for XOAUTH2: one per process, shared by every
// gateway and delivery. The token is cached until it is due for renewal
// (renewAt); concurrent callers that find none share one fetch
// (single-flight); a fetch runs with its own deadline (Timeout), not a
// caller's, so that one caller giving up does not fail the others, and a
// caller waits no longer than its own context allows. A renewal that
// fails leaves the cached token in use until it expires. Errors name the
// token endpoint's host and never carry a secret, a token or the
// endpoint's response body.
type Tokens struct {
	fetch   FetchFunc
	host    string
	timeout time.Duration
	now     func() time.Time

	ok, failed atomic.Uint64

	mu      sync.Mutex
	tok     string
	renewAt time.Time
	expiry  time.Time // tok is used until then when a renewal fails
	flight  *tokenFlight
	refused time.Time // when renewIf last dropped a refused token
}

// tokenFlight is one fetch in progress; done is closed when tok or err is
// set. stale: the fetch failed and tok is the cached token, not yet
// expired.
type tokenFlight struct {
	done  chan struct{}
	tok   string
	err   error
	stale bool
}

// TokenStats counts fetches from the token endpoint by result.
type TokenStats struct {
	Fetched, Failed uint64
}

// NewTokens returns a cached token source around fetch. tokenURL is used
// only to name the endpoint's host in errors; timeout <= 0 takes
// DefaultTokenTimeout; now nil takes time.Now.
func NewTokens(fetch FetchFunc, tokenURL string, timeout time.Duration, now func() time.Time) *Tokens {
	if timeout <= 0 {
		timeout = DefaultTokenTimeout
	}
	if now == nil {
		now = time.Now
	}
	host := tokenURL
	if u, err := url.Parse(tokenURL); err == nil && u.Host != "" {
		host = u.Host
	}
	return &Tokens{fetch: fetch, host: host, timeout: timeout, now: now}
}

// Stats returns the fetch counters.
func (t *Tokens) Stats() TokenStats {
	return TokenStats{Fetched: t.ok.Load(), Failed: t.failed.Load()}
}

// Token returns the cached access token, or waits for a fetch (started
// here or by another caller) no longer than ctx allows.
func (t *Tokens) Token(ctx context.Context) (string, error) {
	tok, _, err := t.token(ctx)
	return tok, err
}

// token is Token, and fetched reports that this call started a fetch that
// succeeded (one caller per new token: the gateway it is for counts it).
func (t *Tokens) token(ctx context.Context) (tok string, fetched bool, err error) {
	t.mu.Lock()
	if t.tok != "" && t.now().Before(t.renewAt) {
		tok := t.tok
		t.mu.Unlock()
		return tok, false, nil
	}
	f := t.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		t.flight = f
		fetched = true
		go t.run(f)
	}
	t.mu.Unlock()
	select {
	case <-f.done:
		if f.stale {
			return f.tok, false, nil
		}
		return f.tok, fetched && f.err == nil, f.err
	case <-ctx.Done():
		return "", false, &TokenError{Host: t.host, Reason: "timed out waiting for the token endpoint"}
	}
}

// Renew drops the cached token after a gateway refused it, so that the
// next Token fetches a new one. A fetch already in progress is left to
// finish: its token is the new one.
func (t *Tokens) Renew() {
	t.mu.Lock()
	t.tok, t.renewAt = "", time.Time{}
	t.mu.Unlock()
}

// renewIf is Renew for a gateway that refused tok, and reports whether
// AUTH is worth trying again. A token that is no longer the cached one was
// renewed already (deliveries refused with the same stale token at the
// same time cause one fetch, not one each): try the newer one. The cached
// one is dropped at most once per tokenRefusalRenewal: when the token
// fetched for the last refusal is refused too, the gateway refuses
// tokens (a missing permission), not a stale one, and dropping it at
// every refusal would fetch a token per message attempt; it stays and
// AUTH is not tried again.
func (t *Tokens) renewIf(tok string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != tok {
		return true
	}
	now := t.now()
	if !t.refused.IsZero() && now.Sub(t.refused) < tokenRefusalRenewal {
		return false
	}
	t.tok, t.renewAt, t.refused = "", time.Time{}, now
	return true
}

// run does one fetch and hands its result to every waiter.
func (t *Tokens) run(f *tokenFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	start := t.now()
	tok, err := t.fetchBounded(ctx)
	t.mu.Lock()
	switch {
	case err == nil:
		f.tok = tok.AccessToken
		t.tok, t.renewAt = tok.AccessToken, renewAt(start, tok.Expiry)
		// Without an expiry (or one before the renewal) nothing is
		// known to be valid after the renewal time.
		t.expiry = t.renewAt
		if tok.Expiry.After(t.renewAt) {
			t.expiry = tok.Expiry
		}
		t.ok.Add(1)
	case t.tok != "" && t.now().Before(t.expiry):
		// Renewal is early so that a failing endpoint costs nothing
		// while the cached token is valid; the next call asks again.
		f.err, f.tok, f.stale = err, t.tok, true
		t.failed.Add(1)
	default:
		f.err = err
		t.failed.Add(1)
	}
	t.flight = nil
	t.mu.Unlock()
	close(f.done)
}

// fetchBounded calls fetch and checks what it returned. A fetch that
// outlives ctx (an HTTP client without a timeout) is abandoned, not waited
// for: it ends on its own and its result is dropped.
func (t *Tokens) fetchBounded(ctx context.Context) (*oauth2.Token, error) {
	type res struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan res, 1)
	go func() {
		tok, err := t.fetch(ctx)
		ch <- res{tok, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, &TokenError{Host: t.host, Reason: tokenErrorReason(r.err)}
		}
		if r.tok == nil || r.tok.AccessToken == "" {
			return nil, &TokenError{Host: t.host, Reason: "the token response has no access_token"}
		}
		if !validToken(r.tok.AccessToken) {
			return nil, &TokenError{Host: t.host, Reason: "the access token is not printable ASCII"}
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, &TokenError{Host: t.host, Reason: "timed out waiting for the token endpoint"}
	}
}

// renewAt is when a token fetched at start and valid until expiry is due
// for renewal: a fifth of its lifetime early, at most tokenEarly; one
// expired on arrival after tokenExpiredKeep (the gateway judges it).
func renewAt(start, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return start.Add(tokenNoExpiry)
	}
	life := expiry.Sub(start)
	if life <= 0 {
		return start.Add(tokenExpiredKeep)
	}
	return expiry.Add(-min(life/5, tokenEarly))
}

// validToken reports whether tok can go into the XOAUTH2 initial response:
// RFC 6750 §2.1's b64token is printable ASCII, and a control character
// (\x01 is XOAUTH2's separator) would change the response's meaning.
func validToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return false
		}
	}
	return true
}

// TokenError is a failed fetch from the token endpoint: Host names it,
// Reason says what happened in words made here (never the endpoint's
// body, which may echo what was sent).
type TokenError struct {
	Host   string
	Reason string
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("cannot get an OAuth2 access token from %s: %s", e.Host, e.Reason)
}

// oauthErrorCodes are RFC 6749 §5.2's error codes: the only text of an
// error response that is repeated (invalid_client says the secret is
// wrong, invalid_scope the scope, unauthorized_client a missing grant).
var oauthErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
}

// tokenErrorReason describes a fetch error by its type, in words made
// here: an OAuth2 error response (RFC 6749 §5.2) by its HTTP status and,
// when it is a registered one, its error code.
func tokenErrorReason(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		s := "the token endpoint refused the request"
		if re.Response != nil {
			s = fmt.Sprintf("the token endpoint answered HTTP %d", re.Response.StatusCode)
		}
		if oauthErrorCodes[re.ErrorCode] {
			s += " (" + re.ErrorCode + ")"
		}
		return s
	}
	var (
		ue   *url.Error
		cert *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		alrt tls.AlertError
	)
	switch {
	case isTimeout(err):
		return "timed out waiting for the token endpoint"
	case errors.As(err, &cert):
		return "the token endpoint's TLS certificate was refused"
	case errors.As(err, &rec), errors.As(err, &alrt):
		return "TLS with the token endpoint failed"
	case errors.As(err, &ue):
		return "cannot reach the token endpoint"
	}
	return "the token endpoint's answer is not a token response"
}
