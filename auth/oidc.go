package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// asymmetricAlgs are the only JWS algorithms accepted (RFC 7518 §3.1).
// "none" and the HMAC algorithms are refused: with HS256 the "key" would be
// whatever the verifier holds — the issuer's public key, which anyone has.
var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

const (
	// nbfLeeway is the clock skew allowed for "nbf" (RFC 7519 §4.1.5).
	nbfLeeway = time.Minute
	// discoveryRetry is the least time between discovery attempts while
	// the issuer is unreachable; in between, checks answer ErrUnavailable
	// at once.
	discoveryRetry = 2 * time.Second
	// defaultOIDCHTTPTimeout bounds each request to the issuer when
	// OIDCConfig.HTTPClient is nil.
	defaultOIDCHTTPTimeout = 10 * time.Second
	// maxTokenResponse bounds the token endpoint's answer.
	maxTokenResponse = 1 << 20
)

// OIDCConfig configures an OIDCBackend.
type OIDCConfig struct {
	// Issuer is the issuer URL; discovery reads
	// Issuer + "/.well-known/openid-configuration" (OpenID Connect
	// Discovery 1.0 §4) and the "issuer" there must match exactly.
	Issuer string
	// Audience must be one of the token's "aud" values (required).
	Audience string
	// UserClaim names the claim that is the user's identity. Empty means
	// "email"; then a token whose "email_verified" is false is refused.
	UserClaim string
	// AddressClaim optionally names a claim (a string or an array of
	// strings) holding more allowed sender addresses.
	AddressClaim string
	// HTTPClient is used for discovery, the JWKS and the token endpoint.
	// Nil means a client with a 10 s timeout.
	HTTPClient *http.Client

	// PasswordGrant lets CheckPassword exchange a user name and password
	// at the issuer's token endpoint (RFC 6749 §4.3, the resource owner
	// password credentials grant) for a token, which is then verified like
	// a bearer token. It needs ClientID (and ClientSecret for a
	// confidential client).
	PasswordGrant bool
	ClientID      string
	ClientSecret  string
	// Scopes requested with the password grant. Empty means openid, email.
	Scopes []string

	// AllowedDomains, if set, admits only tokens whose "hd" claim (Google
	// Workspace's hosted domain) is one of them or, without "hd" and for
	// issuers other than Google, whose verified email's domain is.
	// AllowedTenants, if set, admits only tokens whose "tid" claim (Entra
	// ID's tenant) is one of them. With both, a token must pass both. A
	// shared issuer (see SharedIssuer) needs at least one.
	AllowedDomains []string
	AllowedTenants []string

	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// OIDCBackend checks OAuth 2.0 bearer tokens that are JWTs signed by an
// OpenID Connect issuer: signature against the issuer's published keys
// (JWKS, refetched when a token names an unknown key ID, so key rotation
// just works), "iss", "aud", "exp" and "nbf". With PasswordGrant it also
// checks passwords by asking the issuer's token endpoint.
//
// Discovery happens on first use and is retried (at most every 2 s) until
// it succeeds, so an issuer that is down at startup makes checks answer
// ErrUnavailable rather than the relay fail to start.
type OIDCBackend struct {
	cfg        OIDCConfig
	log        *slog.Logger
	client     *http.Client
	now        func() time.Time
	retryEvery time.Duration

	allow allowList

	mu      sync.Mutex // guards the fields below; never held across I/O
	state   *oidcState
	lastTry time.Time
	lastErr error
}

// oidcState is what discovery yields.
type oidcState struct {
	verifier *oidc.IDTokenVerifier
	tokenURL string
}

// NewOIDCBackend validates cfg and tries discovery once with ctx. A failed
// discovery is logged, not returned: it is retried on first use. Only a
// configuration error is returned.
func NewOIDCBackend(ctx context.Context, cfg OIDCConfig, logger *slog.Logger) (*OIDCBackend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("auth: OIDC issuer is required")
	}
	if !strings.HasPrefix(cfg.Issuer, "https://") && !strings.HasPrefix(cfg.Issuer, "http://") {
		return nil, fmt.Errorf("auth: OIDC issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth: OIDC audience is required")
	}
	if cfg.PasswordGrant && cfg.ClientID == "" {
		return nil, errors.New("auth: OIDC password grant needs a client ID")
	}
	allow := newAllowList(cfg.AllowedDomains, cfg.AllowedTenants)
	if err := allow.sufficientFor(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("auth: OIDC issuer %s: %w", cfg.Issuer, err)
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "email"
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email"}
	}
	b := &OIDCBackend{cfg: cfg, log: logger.With("backend", "oidc"), client: cfg.HTTPClient,
		now: cfg.Now, retryEvery: discoveryRetry}
	b.allow = allow
	if allow.empty() {
		b.log.Info("OIDC: no allow-list; every account the issuer signs a token for this audience is accepted", "issuer", cfg.Issuer)
	} else {
		b.log.Info("OIDC: only allowed organisations are accepted", "issuer", cfg.Issuer, "shared_issuer", SharedIssuer(cfg.Issuer),
			"allowed_domains", strings.Join(allow.domains, ","), "allowed_tenants", strings.Join(allow.tenants, ","))
	}
	if b.client == nil {
		b.client = &http.Client{Timeout: defaultOIDCHTTPTimeout}
	}
	if b.now == nil {
		b.now = time.Now
	}
	if _, err := b.discover(ctx); err != nil {
		b.log.Warn("OIDC discovery failed; will retry on first use", "issuer", cfg.Issuer, "err", err)
	}
	return b, nil
}

// Name implements TokenBackend and PasswordBackend.
func (b *OIDCBackend) Name() string { return "oidc" }

// discover returns the discovered state, discovering it if needed.
func (b *OIDCBackend) discover(ctx context.Context) (*oidcState, error) {
	b.mu.Lock()
	if b.state != nil {
		s := b.state
		b.mu.Unlock()
		return s, nil
	}
	if b.lastErr != nil && time.Since(b.lastTry) < b.retryEvery {
		err := b.lastErr
		b.mu.Unlock()
		return nil, err
	}
	b.mu.Unlock()

	s, err := b.doDiscover(ctx)

	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.lastTry, b.lastErr = time.Now(), err
		return nil, err
	}
	if b.state == nil { // another caller may have won the race; keep one
		b.state = s
		b.log.Info("OIDC issuer discovered", "issuer", b.cfg.Issuer)
	}
	return b.state, nil
}

func (b *OIDCBackend) doDiscover(ctx context.Context) (*oidcState, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, b.client), b.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC discovery: %v", ErrUnavailable, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, fmt.Errorf("%w: OIDC discovery: no jwks_uri", ErrUnavailable)
	}
	// The key set outlives this request: give it a context that is never
	// cancelled (it carries only the HTTP client).
	keys := &jwksKeySet{remote: oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), b.client), meta.JWKSURI)}
	v := oidc.NewVerifier(b.cfg.Issuer, keys, &oidc.Config{
		ClientID:             b.cfg.Audience,
		SupportedSigningAlgs: asymmetricAlgs,
		Now:                  b.now,
	})
	return &oidcState{verifier: v, tokenURL: p.Endpoint().TokenURL}, nil
}

// jwksKeySet wraps go-oidc's RemoteKeySet to tell "the keys could not be
// fetched" (the issuer is unreachable: ErrUnavailable) from "no key verifies
// this signature" (ErrBadCredentials). go-oidc flattens the error with %v,
// so the wrapper records the distinction in a holder carried by the context.
type jwksKeySet struct {
	remote *oidc.RemoteKeySet
}

type fetchErrKey struct{}

func (k *jwksKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	if err != nil && !strings.HasPrefix(err.Error(), "fetching keys") {
		// go-oidc wakes the callers of a key refetch before it clears its
		// in-flight marker, so a lookup for a new key ID that starts in that
		// moment is handed the finished fetch's (old) keys instead of
		// fetching: a token signed with a just-rotated key would fail as a
		// bad signature, or an unreachable JWKS look like one. Ask once more
		// a moment later, when the marker is gone.
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(20 * time.Millisecond):
		}
		payload, err = k.remote.VerifySignature(ctx, jwt)
	}
	// RemoteKeySet says "fetching keys ..." exactly when the JWKS request
	// failed (network error, non-200, undecodable body).
	if err != nil && strings.HasPrefix(err.Error(), "fetching keys") {
		if h, ok := ctx.Value(fetchErrKey{}).(*error); ok {
			*h = err
		}
	}
	return payload, err
}

// CheckToken implements TokenBackend.
func (b *OIDCBackend) CheckToken(ctx context.Context, token string) (*Identity, error) {
	s, err := b.discover(ctx)
	if err != nil {
		return nil, err
	}
	return b.verify(ctx, s, token)
}

// verify checks a JWT and maps its claims to an Identity.
func (b *OIDCBackend) verify(ctx context.Context, s *oidcState, token string) (*Identity, error) {
	if err := checkJWTHeader(token); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	var fetchErr error
	idt, err := s.verifier.Verify(context.WithValue(ctx, fetchErrKey{}, &fetchErr), token)
	if fetchErr != nil {
		return nil, fmt.Errorf("%w: OIDC keys: %v", ErrUnavailable, fetchErr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrBadCredentials, err)
	}
	// go-oidc allows 5 minutes of skew on nbf; allow less.
	if nbf, ok := claims["nbf"].(float64); ok {
		if t := time.Unix(int64(nbf), 0); b.now().Add(nbfLeeway).Before(t) {
			return nil, fmt.Errorf("%w: token not valid before %s", ErrBadCredentials, t.UTC().Format(time.RFC3339))
		}
	}
	user, _ := claims[b.cfg.UserClaim].(string)
	if user == "" {
		return nil, fmt.Errorf("%w: token has no %q claim", ErrBadCredentials, b.cfg.UserClaim)
	}
	if b.cfg.UserClaim == "email" && isFalse(claims["email_verified"]) {
		return nil, fmt.Errorf("%w: email %s not verified by the issuer", ErrBadCredentials, user)
	}
	if err := b.allow.check(b.cfg.Issuer, claims, user); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCredentials, user, err)
	}
	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		a = strings.TrimSpace(a)
		if k := strings.ToLower(a); strings.Contains(a, "@") && !seen[k] {
			seen[k] = true
			addrs = append(addrs, a)
		}
	}
	add(user)
	if b.cfg.AddressClaim != "" {
		switch v := claims[b.cfg.AddressClaim].(type) {
		case string:
			add(v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					add(s)
				}
			}
		}
	}
	// The account is the issuer's subject (OpenID Connect Core 1.0 §2:
	// iss and sub together are the only stable identifier).
	sub := idt.Subject
	if sub == "" {
		sub = strings.ToLower(user)
	}
	return &Identity{User: user, Addresses: addrs, Backend: b.Name(), Canonical: "oidc:" + idt.Issuer + "#" + sub}, nil
}

// isFalse reports whether a claim is false: the JSON boolean, or the string
// "false" that some issuers send.
func isFalse(v any) bool {
	switch x := v.(type) {
	case bool:
		return !x
	case string:
		return strings.EqualFold(x, "false")
	}
	return false
}

// checkJWTHeader refuses anything but a compact JWS with an asymmetric alg
// before any key is looked at, so that the error says why.
func checkJWTHeader(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return errors.New("malformed JWS header")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return errors.New("malformed JWS header")
	}
	if !slices.Contains(asymmetricAlgs, h.Alg) {
		return fmt.Errorf("signature algorithm %q not allowed", h.Alg)
	}
	return nil
}

// isJWT reports whether s looks like a compact JWS.
func isJWT(s string) bool { return strings.Count(s, ".") == 2 }
