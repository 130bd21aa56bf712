package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a minimal OpenID provider: discovery and a JWKS with one
// ES256 key, and real signed ID tokens.
type issuer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
	sig jose.Signer
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.srv.URL,
			"jwks_uri":                              is.srv.URL + "/jwks",
			"authorization_endpoint":                is.srv.URL + "/auth",
			"token_endpoint":                        is.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	is.sig, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func (is *issuer) token(t *testing.T, email, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.Signed(is.sig).Claims(jwt.Claims{
		Issuer: is.srv.URL, Subject: "sub-" + email, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}).Claims(map[string]any{"email": email, "email_verified": true}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestBinaryOIDCWithCurl: a real client, curl --oauth2-bearer, submits
// through OAUTHBEARER to the binary configured with RELAY_AUTH=oidc; an
// expired or foreign-audience token is refused with 535.
func TestBinaryOIDCWithCurl(t *testing.T) {
	curl := requireClient(t, "curl", "curl")
	is := newIssuer(t)
	sk := newSink(t, "127.0.0.1:0")
	p := start(t, map[string]string{
		"RELAY_DATA_DIR":      t.TempDir(),
		"RELAY_GATEWAY":       sk.addr(),
		"RELAY_GATEWAY_TLS":   "none",
		"RELAY_AUTH":          "oidc",
		"RELAY_OIDC_ISSUER":   is.srv.URL,
		"RELAY_OIDC_AUDIENCE": "edgerelay",
	})
	send := func(bearer string) (string, error) {
		cmd := exec.Command(curl, "-sS", "-v", "--ssl-reqd", "-k", "smtp://"+p.sub+"/client.test",
			"-u", "carol@example.org:", "--oauth2-bearer", bearer,
			"--mail-from", "carol@example.org", "--mail-rcpt", "dave@example.net", "-T", "-")
		cmd.Stdin = strings.NewReader(msg("carol@example.org", "dave@example.net", "oauth"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := send(is.token(t, "carol@example.org", "edgerelay", time.Hour))
	if err != nil || !strings.Contains(out, "AUTH OAUTHBEARER") || !strings.Contains(out, "250 2.0.0 Ok: queued as") {
		t.Fatalf("curl with a good token: %v\n%s", err, out)
	}
	for name, tok := range map[string]string{
		"expired":        is.token(t, "carol@example.org", "edgerelay", -time.Minute),
		"wrong audience": is.token(t, "carol@example.org", "someone-else", time.Hour),
	} {
		out, err := send(tok)
		if err == nil || !strings.Contains(out, "535 5.7.8") {
			t.Fatalf("%s token: %v\n%s", name, err, out)
		}
	}
	waitFor(t, "delivery", 60*time.Second, func() bool { return len(sk.messages()) == 1 })
	p.stop()
}
