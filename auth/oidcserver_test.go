package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testIssuer is an in-process OpenID provider: discovery, a JWKS, and a
// token endpoint for the password grant, issuing real signed JWTs.
type testIssuer struct {
	t   testing.TB
	srv *httptest.Server
	url string

	mu        sync.Mutex
	signing   *testKey   // signs new tokens
	published []*testKey // in the JWKS
	users     map[string]string
	claims    map[string]map[string]any // extra claims per user

	down       atomic.Bool // every endpoint answers 503
	tokenDown  atomic.Bool // only the token endpoint answers 503
	jwksHits   atomic.Int64
	clientID   string
	clientPass string
}

type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newTestKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) *testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, priv: priv}
}

func (k *testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

const testAudience = "edgerelay"

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	is := &testIssuer{t: t, users: map[string]string{"alice@example.org": "alicepw"},
		claims: map[string]map[string]any{}, clientID: "relay client", clientPass: "s3cret&="}
	k := newTestKey(t, "k1", jose.RS256)
	is.signing, is.published = k, []*testKey{k}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("/jwks", is.jwks)
	mux.HandleFunc("/token", is.token)
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	is.url = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                is.url,
		"jwks_uri":                              is.url + "/jwks",
		"token_endpoint":                        is.url + "/token",
		"authorization_endpoint":                is.url + "/authorize",
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
	})
}

func (is *testIssuer) jwks(w http.ResponseWriter, _ *http.Request) {
	is.jwksHits.Add(1)
	is.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range is.published {
		set.Keys = append(set.Keys, k.jwk())
	}
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}

// token implements the password grant (RFC 6749 §4.3) for a confidential
// client using client_secret_basic.
func (is *testIssuer) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, e string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"error": e})
	}
	if is.tokenDown.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != "relay+client" || secret != "s3cret%26%3D" { // form-encoded, RFC 6749 §2.3.1
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostFormValue("grant_type") != "password" {
		fail(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	user, pw := r.PostFormValue("username"), r.PostFormValue("password")
	is.mu.Lock()
	want, known := is.users[user]
	is.mu.Unlock()
	if !known || want != pw {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": "opaque-access-token",
		"token_type":   "Bearer",
		"id_token":     is.sign(is.stdClaims(user)),
	})
}

// stdClaims are valid claims for user: right issuer and audience, valid now
// for an hour.
func (is *testIssuer) stdClaims(user string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":            is.url,
		"aud":            testAudience,
		"sub":            "sub-" + user,
		"email":          user,
		"email_verified": true,
		"iat":            now.Unix(),
		"nbf":            now.Add(-time.Minute).Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
	is.mu.Lock()
	for k, v := range is.claims[user] {
		c[k] = v
	}
	is.mu.Unlock()
	return c
}

// sign signs claims with the current signing key.
func (is *testIssuer) sign(claims map[string]any) string {
	is.mu.Lock()
	k := is.signing
	is.mu.Unlock()
	return signWith(is.t, k, claims)
}

func signWith(t testing.TB, k *testKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rotate makes k the signing key and the only published one.
func (is *testIssuer) rotate(k *testKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.signing, is.published = k, []*testKey{k}
}

// unsignedToken is an "alg":"none" JWT (RFC 7519 §6).
func unsignedToken(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return b64(h) + "." + b64(p) + "."
}

// hs256WithPublicKey is the classic algorithm-confusion forgery: an HMAC
// signed with the issuer's public key (which everyone has) as the secret.
func hs256WithPublicKey(t testing.TB, k *testKey, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": k.kid})
	p, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(p)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
