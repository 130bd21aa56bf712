package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/outbound"
)

const oauthTestSecret = "s3cr3t-oauth-client-secret"

// googleKeyFile writes a service-account key file for a new RSA key with
// tokenURI, and returns its path.
func googleKeyFile(t *testing.T, tokenURI string, edit func(map[string]string)) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{
		"type": "service_account", "client_email": "relay@project.iam.gserviceaccount.com", "private_key_id": "kid",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": tokenURI,
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOAuthConfigErrors: every wrong OAuth2 or RELAY_GATEWAY_AUTH value
// stops the start with one line per problem naming its variable, and no
// line shows the client secret or the key.
func TestOAuthConfigErrors(t *testing.T) {
	const tokenURL = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
	m365 := map[string]string{
		"RELAY_GATEWAY": "smtp://smtp.office365.com:587", "RELAY_GATEWAY_USERNAME": "relay@example.org",
		"RELAY_GATEWAY_OAUTH_TOKEN_URL": tokenURL, "RELAY_GATEWAY_OAUTH_CLIENT_ID": "id",
		"RELAY_GATEWAY_OAUTH_CLIENT_SECRET": oauthTestSecret, "RELAY_GATEWAY_OAUTH_SCOPE": "https://outlook.office365.com/.default",
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	goodKey := googleKeyFile(t, "https://oauth2.googleapis.com/token", nil)
	google := map[string]string{"RELAY_GATEWAY": "smtp://smtp.gmail.com:587",
		"RELAY_GATEWAY_GOOGLE_KEY_FILE": goodKey, "RELAY_GATEWAY_GOOGLE_SUBJECT": "relay@example.org"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // each a line's start and a part of it: "VAR: text"
	}{
		{"unknown mechanism", map[string]string{"RELAY_GATEWAY_AUTH": "cram-md5"}, []string{"RELAY_GATEWAY_AUTH: \"cram-md5\": want auto, plain, login or xoauth2"}},
		{"xoauth2 without a token source", map[string]string{"RELAY_GATEWAY_AUTH": "xoauth2"}, []string{"RELAY_GATEWAY_AUTH: xoauth2 needs a token source"}},
		{"plain with a token source", with(m365, "RELAY_GATEWAY_AUTH", "PLAIN"), []string{"RELAY_GATEWAY_AUTH: PLAIN sends a password"}},
		{"password with a token source", with(m365, "RELAY_GATEWAY_PASSWORD", "pw"), []string{"RELAY_GATEWAY_PASSWORD: set together with an OAuth2 token source"}},
		{"token URL http", with(m365, "RELAY_GATEWAY_OAUTH_TOKEN_URL", "http://login.example/token"),
			[]string{"RELAY_GATEWAY_OAUTH_TOKEN_URL: must be https (http only to a loopback address)"}},
		{"token URL with user information", with(m365, "RELAY_GATEWAY_OAUTH_TOKEN_URL", "https://id:"+oauthTestSecret+"@login.example/token"),
			[]string{"RELAY_GATEWAY_OAUTH_TOKEN_URL: must not carry user information"}},
		{"token URL relative", with(m365, "RELAY_GATEWAY_OAUTH_TOKEN_URL", "/token"), []string{"RELAY_GATEWAY_OAUTH_TOKEN_URL: \"/token\" is not an absolute URL"}},
		{"token URL ftp", with(m365, "RELAY_GATEWAY_OAUTH_TOKEN_URL", "ftp://login.example/token"), []string{"RELAY_GATEWAY_OAUTH_TOKEN_URL: \"ftp://login.example/token\": want an https URL"}},
		{"token URL alone", map[string]string{"RELAY_GATEWAY_OAUTH_TOKEN_URL": tokenURL}, []string{
			"RELAY_GATEWAY_OAUTH_CLIENT_ID: required", "RELAY_GATEWAY_OAUTH_CLIENT_SECRET: required", "RELAY_GATEWAY_USERNAME: required with RELAY_GATEWAY_OAUTH_TOKEN_URL"}},
		{"client id alone", map[string]string{"RELAY_GATEWAY_OAUTH_CLIENT_ID": "id", "RELAY_GATEWAY_USERNAME": "relay@example.org"},
			[]string{"RELAY_GATEWAY_OAUTH_TOKEN_URL: required", "RELAY_GATEWAY_OAUTH_CLIENT_SECRET: required"}},
		{"scope with a space", with(m365, "RELAY_GATEWAY_OAUTH_SCOPE", "Mail.Send SMTP.Send"), []string{"RELAY_GATEWAY_OAUTH_SCOPE: \"Mail.Send SMTP.Send\" is not a scope"}},
		{"secret and its file", with(m365, "RELAY_GATEWAY_OAUTH_CLIENT_SECRET_FILE", writeFile(t, oauthTestSecret)),
			[]string{"RELAY_GATEWAY_OAUTH_CLIENT_SECRET_FILE: set both"}},
		{"user with a control character", with(m365, "RELAY_GATEWAY_USERNAME", "relay@example.org\x01auth=Bearer x"), []string{"RELAY_GATEWAY_USERNAME: contains a control character"}},
		{"both token sources", with(m365, "RELAY_GATEWAY_GOOGLE_KEY_FILE", goodKey), []string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: set together with RELAY_GATEWAY_OAUTH_*"}},
		{"google without subject", with(google, "RELAY_GATEWAY_GOOGLE_SUBJECT", "-"), []string{"RELAY_GATEWAY_GOOGLE_SUBJECT: required with RELAY_GATEWAY_GOOGLE_KEY_FILE"}},
		{"google subject not an address", with(google, "RELAY_GATEWAY_GOOGLE_SUBJECT", "relay"), []string{"RELAY_GATEWAY_GOOGLE_SUBJECT: \"relay\" is not a user's address"}},
		{"google without key", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", "-"), []string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: required with RELAY_GATEWAY_GOOGLE_SUBJECT"}},
		{"google key missing", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", "/nonexistent/key.json"), []string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: open /nonexistent/key.json: no such file"}},
		{"google key not JSON", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", writeFile(t, "-----BEGIN PRIVATE KEY-----\n"+oauthTestSecret)),
			[]string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: " + "not a JSON service-account key file"}},
		{"google key of a user", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", googleKeyFile(t, "https://oauth2.googleapis.com/token", func(m map[string]string) { m["type"] = "authorized_user" })),
			[]string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: " + `"type" is not "service_account"`}},
		{"google key not RSA", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", googleKeyFile(t, "https://oauth2.googleapis.com/token", func(m map[string]string) { m["private_key"] = oauthTestSecret })),
			[]string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: " + `"private_key" is not a PEM RSA private key`}},
		{"google token_uri http", with(google, "RELAY_GATEWAY_GOOGLE_KEY_FILE", googleKeyFile(t, "http://oauth2.example/token", nil)),
			[]string{"RELAY_GATEWAY_GOOGLE_KEY_FILE: " + `"token_uri" must be https`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig()
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				name, _, _ := strings.Cut(w, ": ")
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, name+": ") && strings.Contains(l, strings.TrimPrefix(w, name+": ")) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q in\n%s", w, err)
				}
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "RELAY_") {
					t.Errorf("line %q names no variable", l)
				}
			}
			for _, secret := range []string{oauthTestSecret, "PRIVATE KEY"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows %q: %v", secret, err)
				}
			}
		})
	}
}

// localTokenEndpoint answers every POST with a token, counting them.
func localTokenEndpoint(t *testing.T, check func(*http.Request) bool) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || !check(r) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token", &n
}

// TestOAuthConfigMicrosoft365: the README's Microsoft 365 configuration
// (client secret from a file) gives every SMTP gateway without a password
// the one token source, which fetches from the token URL with the client
// credentials and scope.
func TestOAuthConfigMicrosoft365(t *testing.T) {
	url, n := localTokenEndpoint(t, func(r *http.Request) bool {
		f := r.PostForm
		return f.Get("grant_type") == "client_credentials" && f.Get("client_id") == "app-id" &&
			f.Get("client_secret") == oauthTestSecret && f.Get("scope") == "https://outlook.office365.com/.default"
	})
	t.Setenv("RELAY_GATEWAY", "smtp://smtp.office365.com:587")
	t.Setenv("RELAY_GATEWAY_USERNAME", "relay@example.org")
	t.Setenv("RELAY_GATEWAY_OAUTH_TOKEN_URL", url)
	t.Setenv("RELAY_GATEWAY_OAUTH_CLIENT_ID", "app-id")
	t.Setenv("RELAY_GATEWAY_OAUTH_CLIENT_SECRET_FILE", writeFile(t, oauthTestSecret+"\n"))
	t.Setenv("RELAY_GATEWAY_OAUTH_SCOPE", "https://outlook.office365.com/.default")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.gatewayAuth("relay@example.org", "")
	b := cfg.gatewayAuth("other@example.org", "")
	if a.Tokens == nil || a.Tokens != b.Tokens || a.Mechanism != "" || a.Username != "relay@example.org" {
		t.Fatalf("gatewayAuth: %+v, %+v", a, b)
	}
	if pw := cfg.gatewayAuth("u", "file-password"); pw.Tokens != nil || pw.Password != "file-password" {
		t.Errorf("a gateway with a password: %+v", pw)
	}
	if none := cfg.gatewayAuth("", ""); none.Tokens != nil || none.Username != "" {
		t.Errorf("a gateway without credentials (a backup that relays without AUTH): %+v", none)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if tok, err := a.Tokens.Token(ctx); tok != "tok-1" || err != nil {
			t.Fatalf("Token: %q, %v", tok, err)
		}
	}
	if n.Load() != 1 {
		t.Errorf("%d token requests", n.Load())
	}
	t.Setenv("RELAY_GATEWAY_AUTH", "XOAUTH2")
	if cfg, err = loadConfig(); err != nil {
		t.Fatal(err)
	}
	if a := cfg.gatewayAuth("relay@example.org", ""); a.Tokens == nil || a.Mechanism != outbound.AuthXOAUTH2 {
		t.Errorf("forced xoauth2: %+v", a)
	}
	// xoauth2 is for the gateway the token is for: one with a password
	// (the credentials file) keeps PLAIN or LOGIN.
	if pw := cfg.gatewayAuth("u", "file-password"); pw.Tokens != nil || pw.Mechanism != "" {
		t.Errorf("forced xoauth2, a gateway with a password: %+v", pw)
	}
}

// TestOAuthConfigGoogle: a service-account key file whose token_uri is a
// loopback endpoint; the subject is the SASL user of a gateway without one.
func TestOAuthConfigGoogle(t *testing.T) {
	url, n := localTokenEndpoint(t, func(r *http.Request) bool {
		return r.PostForm.Get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" && r.PostForm.Get("assertion") != ""
	})
	t.Setenv("RELAY_GATEWAY", "smtp://smtp.gmail.com:587")
	t.Setenv("RELAY_GATEWAY_GOOGLE_KEY_FILE", googleKeyFile(t, url, nil))
	t.Setenv("RELAY_GATEWAY_GOOGLE_SUBJECT", "relay@example.org")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The subject is RELAY_GATEWAY's first gateway's user.
	if cfg.GatewayUsername != "relay@example.org" {
		t.Fatalf("RELAY_GATEWAY_USERNAME %q, want the subject", cfg.GatewayUsername)
	}
	a := cfg.gatewayAuth(cfg.GatewayUsername, cfg.GatewayPassword)
	if a.Tokens == nil || a.Username != "relay@example.org" {
		t.Fatalf("gatewayAuth: %+v", a)
	}
	if none := cfg.gatewayAuth("", ""); none.Tokens != nil {
		t.Errorf("a second gateway without credentials: %+v", none)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tok, err := a.Tokens.Token(ctx); tok != "tok-1" || err != nil || n.Load() != 1 {
		t.Fatalf("Token: %q, %v (%d requests)", tok, err, n.Load())
	}
}
