package outbound

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test secrets: no error, reply or log line may contain them.
const (
	testClientID     = "client-id-4711"
	testClientSecret = "s3cr3t-client-secret-value"
	testScope        = "https://outlook.office365.com/.default"
)

// tokenEndpoint is a local OAuth2 token endpoint (httptest on 127.0.0.1)
// for the client-credentials grant (RFC 6749 §4.4) or, with a public key,
// the JWT grant (RFC 7523): it checks each request, counts it, and hands
// out tok-1, tok-2, … valid for expiresIn seconds.
type tokenEndpoint struct {
	t   *testing.T
	srv *httptest.Server
	URL string

	requests atomic.Int64
	// expiresIn is the lifetime handed out; delay holds each answer back;
	// hang blocks answers until the test ends; fail, when set, answers
	// every request (status, body).
	expiresIn atomic.Int64
	delay     time.Duration
	hang      chan struct{}

	mu      sync.Mutex
	fail    func(w http.ResponseWriter)
	jwtKey  *rsa.PublicKey // JWT grant when set
	jwtIss  string
	jwtSub  string
	badReqs []string // what was wrong with refused requests
}

func newTokenEndpoint(t *testing.T) *tokenEndpoint {
	e := &tokenEndpoint{t: t, hang: make(chan struct{})}
	e.expiresIn.Store(3600)
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	e.URL = e.srv.URL + "/tenant/oauth2/v2.0/token"
	t.Cleanup(func() {
		close(e.hang)
		e.srv.Close()
	})
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	n := e.requests.Add(1)
	if e.delay > 0 {
		time.Sleep(e.delay)
	}
	e.mu.Lock()
	fail, key := e.fail, e.jwtKey
	e.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		e.refuse(w, "not a form POST")
		return
	}
	if key != nil {
		if why := e.checkJWT(r, key); why != "" {
			e.refuse(w, why)
			return
		}
	} else {
		f := r.PostForm
		switch {
		case f.Get("grant_type") != "client_credentials":
			e.refuse(w, "grant_type "+f.Get("grant_type"))
			return
		case f.Get("client_id") != testClientID || f.Get("client_secret") != testClientSecret:
			e.refuse(w, "client credentials")
			return
		case f.Get("scope") != testScope:
			e.refuse(w, "scope "+f.Get("scope"))
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, n, e.expiresIn.Load())
}

func (e *tokenEndpoint) refuse(w http.ResponseWriter, why string) {
	e.mu.Lock()
	e.badReqs = append(e.badReqs, why)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprint(w, `{"error":"invalid_request"}`)
}

// hangAll makes every request wait until the test ends.
func (e *tokenEndpoint) hangAll() {
	e.setFail(func(http.ResponseWriter) { <-e.hang })
}

func (e *tokenEndpoint) setFail(f func(http.ResponseWriter)) {
	e.mu.Lock()
	e.fail = f
	e.mu.Unlock()
}

func (e *tokenEndpoint) checkBad() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.badReqs) > 0 {
		e.t.Errorf("token endpoint refused requests: %v", e.badReqs)
	}
}

// checkJWT verifies a JWT grant's assertion: RS256 signature by key, iss
// the service account, sub the user acted as, scope the Gmail scope, aud
// the token endpoint, and a lifetime of at most an hour (RFC 7523 §3).
func (e *tokenEndpoint) checkJWT(r *http.Request, key *rsa.PublicKey) string {
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return "grant_type " + g
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		return "assertion is not a JWS"
	}
	var hdr struct{ Alg, Typ string }
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Alg != "RS256" {
		return "header"
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "signature encoding"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return "signature does not verify"
	}
	var c struct {
		Iss, Sub, Scope, Aud string
		Exp, Iat             int64
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &c) != nil {
		return "claims"
	}
	switch {
	case c.Iss != e.jwtIss:
		return "iss " + c.Iss
	case c.Sub != e.jwtSub:
		return "sub " + c.Sub
	case c.Scope != GoogleMailScope:
		return "scope " + c.Scope
	case c.Aud != e.URL:
		return "aud " + c.Aud
	case c.Exp <= c.Iat || c.Exp-c.Iat > 3600:
		return "lifetime"
	}
	return ""
}

// serviceAccount makes the endpoint a JWT-grant one and returns the key
// file's JSON for a new RSA key whose token_uri is the endpoint.
func (e *tokenEndpoint) serviceAccount(subject string) []byte {
	e.t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		e.t.Fatal(err)
	}
	const email = "relay@project-4711.iam.gserviceaccount.com"
	e.mu.Lock()
	e.jwtKey, e.jwtIss, e.jwtSub = &k.PublicKey, email, subject
	e.mu.Unlock()
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "project-4711", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1234567890", "token_uri": e.URL,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// clientCredentials is a token source for the endpoint's client-credentials
// grant, with timeout and clock now (nil: time.Now).
func (e *tokenEndpoint) clientCredentials(timeout time.Duration, now func() time.Time) *Tokens {
	return NewTokens(ClientCredentialsFetch(e.URL, testClientID, testClientSecret, []string{testScope}, timeout), e.URL, timeout, now)
}

// jsonAnswer is a token endpoint's failing answer: status and a JSON body.
func jsonAnswer(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}
