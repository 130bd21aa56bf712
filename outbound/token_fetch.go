package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

// GoogleMailScope is the scope of XOAUTH2 to Gmail and Google Workspace's
// SMTP servers (Google's "OAuth 2.0 Mechanism" for IMAP and SMTP).
const GoogleMailScope = "https://mail.google.com/"

// ClientCredentialsFetch is the FetchFunc of the OAuth2 client-credentials
// grant (RFC 6749 §4.4), Microsoft 365's way for a daemon to get a token
// for SMTP AUTH. The client secret goes in the request body
// (client_secret_post, as Microsoft's documentation shows), so a fetch is
// one request.
func ClientCredentialsFetch(tokenURL, clientID, clientSecret string, scopes []string, timeout time.Duration) FetchFunc {
	cfg := &clientcredentials.Config{
		ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL,
		Scopes: scopes, AuthStyle: oauth2.AuthStyleInParams,
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		return withClient(ctx, timeout, cfg.Token)
	}
}

// ServiceAccountKey is what a Google service-account JSON key file holds
// that the JWT grant (RFC 7523) needs.
type ServiceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// ParseServiceAccountKey reads a service-account key file's JSON. The
// error never quotes the file's content (it holds a private key).
func ParseServiceAccountKey(b []byte) (*ServiceAccountKey, error) {
	var k ServiceAccountKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, errors.New("not a JSON service-account key file")
	}
	switch {
	case k.Type != "service_account":
		return nil, errors.New(`not a service-account key file ("type" is not "service_account")`)
	case k.ClientEmail == "":
		return nil, errors.New(`the key file has no "client_email"`)
	case k.PrivateKey == "":
		return nil, errors.New(`the key file has no "private_key"`)
	case k.TokenURI == "":
		return nil, errors.New(`the key file has no "token_uri"`)
	}
	return &k, nil
}

// JWTFetch is the FetchFunc of Google's service-account JWT grant with
// domain-wide delegation: a JWT signed with the key, for subject (the user
// to act as), with the scope GoogleMailScope, sent to the key's token_uri
// (RFC 7523 §2.1).
func JWTFetch(k *ServiceAccountKey, subject string, timeout time.Duration) FetchFunc {
	cfg := &jwt.Config{
		Email: k.ClientEmail, PrivateKey: []byte(k.PrivateKey), PrivateKeyID: k.PrivateKeyID,
		TokenURL: k.TokenURI, Subject: subject, Scopes: []string{GoogleMailScope},
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		return withClient(ctx, timeout, func(ctx context.Context) (*oauth2.Token, error) {
			return cfg.TokenSource(ctx).Token()
		})
	}
}

// withClient runs fetch with an HTTP client whose every request is bound
// to ctx and timeout (golang.org/x/oauth2/jwt posts without a context),
// which follows no redirect (noRedirect),
// and whose transport keeps the transport error: both grants format it
// into their own error with %v, so that its type (a timeout, a refused
// connection) would be lost.
func withClient(ctx context.Context, timeout time.Duration, fetch func(context.Context) (*oauth2.Token, error)) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rt := &ctxTransport{ctx: ctx}
	hc := &http.Client{Transport: rt, CheckRedirect: noRedirect}
	tok, err := fetch(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err == nil {
		return tok, nil
	}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		return nil, err
	case ctx.Err() != nil:
		return nil, &url.Error{Op: "Post", URL: "token endpoint", Err: context.DeadlineExceeded}
	}
	if terr := rt.failed(); terr != nil {
		return nil, &url.Error{Op: "Post", URL: "token endpoint", Err: terr}
	}
	return nil, err
}

// noRedirect makes a token endpoint's redirect its answer (an HTTP 3xx
// error): a token endpoint answers where it is configured, and following
// a 307 or 308 posts the same body (the client secret, or the signed
// assertion) again to the Location, which may be plain http to any host
// (RFC 9110 §15.4.8: the method and content are kept).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ctxTransport sends each request with ctx and remembers the last
// transport error.
type ctxTransport struct {
	ctx context.Context
	mu  sync.Mutex
	err error
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	}
	return resp, err
}

func (t *ctxTransport) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
