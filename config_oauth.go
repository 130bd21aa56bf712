package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/edgerelay/edgerelay/outbound"
)

// gatewayOAuth is what validateOAuth derives: the SASL mechanism forced by
// RELAY_GATEWAY_AUTH ("" for auto) and the one token source of the process
// (nil without OAuth2), shared by every SMTP gateway.
type gatewayOAuth struct {
	mechanism string
	tokens    *outbound.Tokens
}

// gatewayAuth is how the worker authenticates to one SMTP gateway with
// the given credentials: RELAY_GATEWAY_AUTH's mechanism and, for the
// gateway with a user and no password (RELAY_GATEWAY's first, whose user
// is RELAY_GATEWAY_USERNAME, or the Google subject), the shared token
// source. A gateway with a password (the credentials file) authenticates
// with it, by PLAIN or LOGIN even with RELAY_GATEWAY_AUTH=xoauth2, which is
// for the gateway the token is for; one without credentials does no AUTH.
func (c *Config) gatewayAuth(username, password string) outbound.GatewayAuthConfig {
	a := outbound.GatewayAuthConfig{Mechanism: c.oauth.mechanism, Username: username, Password: password}
	switch {
	case c.oauth.tokens != nil && username != "" && password == "":
		a.Tokens = c.oauth.tokens
	case a.Mechanism == outbound.AuthXOAUTH2:
		a.Mechanism = ""
	}
	return a
}

// validateOAuth checks RELAY_GATEWAY_AUTH and the OAuth2 settings for
// XOAUTH2 and builds the token source. validate calls it after
// readSecretFiles (the client secret may come from a file).
func (c *Config) validateOAuth(bad badFunc) {
	c.oauth = gatewayOAuth{}
	switch m := strings.ToLower(c.GatewayAuth); m {
	case "auto":
	case "plain", "login", "xoauth2":
		c.oauth.mechanism = strings.ToUpper(m)
	default:
		bad("GATEWAY_AUTH", "%q: want auto, plain, login or xoauth2", c.GatewayAuth)
	}
	cc, google := c.clientCredentialsSet(), c.googleSet()
	if cc && google {
		bad("GATEWAY_GOOGLE_KEY_FILE", "set together with RELAY_GATEWAY_OAUTH_*: configure one token source, the client-credentials grant or a Google service account")
		return
	}
	if strings.ContainsAny(c.GatewayUsername, "\x00\x01\r\n") {
		bad("GATEWAY_USERNAME", "contains a control character")
	}
	// RFC 4616 §2: a PLAIN password is 1*SAFE, no NUL (which would end it
	// and start a field the server does not expect); the credentials file
	// refuses every control character, and so does this.
	if strings.ContainsFunc(c.GatewayPassword, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		name := "GATEWAY_PASSWORD"
		if c.GatewayPasswordFile != "" {
			name = "GATEWAY_PASSWORD_FILE"
		}
		bad(name, "contains a control character")
	}
	switch {
	case cc:
		c.clientCredentials(bad)
	case google:
		c.googleServiceAccount(bad)
	}
	if c.oauth.tokens == nil {
		if c.oauth.mechanism == outbound.AuthXOAUTH2 {
			bad("GATEWAY_AUTH", "xoauth2 needs a token source: RELAY_GATEWAY_OAUTH_TOKEN_URL (client credentials) or RELAY_GATEWAY_GOOGLE_KEY_FILE")
		}
		return
	}
	if c.Gateway == "" {
		// Only RELAY_GATEWAY's first SMTP gateway gets the token
		// (gatewayAuth): without one, mail would go by MX with the
		// token source unused.
		name := "GATEWAY_OAUTH_TOKEN_URL"
		if google {
			name = "GATEWAY_GOOGLE_KEY_FILE"
		}
		bad(name, "set without RELAY_GATEWAY: the token is for RELAY_GATEWAY's first SMTP gateway (smtp://smtp.office365.com:587, smtp://smtp-relay.gmail.com:587)")
	}
	switch c.oauth.mechanism {
	case outbound.AuthPlain, outbound.AuthLogin:
		bad("GATEWAY_AUTH", "%s sends a password, but an OAuth2 token source is configured: use auto or xoauth2", c.GatewayAuth)
	}
	if c.GatewayPassword != "" {
		bad("GATEWAY_PASSWORD", "set together with an OAuth2 token source: the gateway authenticates with a password or with XOAUTH2, not both")
	}
}

// oauthSet reports whether a token source is configured (maybe wrongly):
// the gateway user then needs no password.
func (c *Config) oauthSet() bool { return c.clientCredentialsSet() || c.googleSet() }

func (c *Config) clientCredentialsSet() bool {
	return c.GatewayOAuthTokenURL != "" || c.GatewayOAuthClientID != "" || c.GatewayOAuthClientSecret != "" || c.GatewayOAuthScope != ""
}

func (c *Config) googleSet() bool {
	return c.GatewayGoogleKeyFile != "" || c.GatewayGoogleSubject != ""
}

// clientCredentials checks RELAY_GATEWAY_OAUTH_* (the client-credentials
// grant, Microsoft 365's) and builds its token source.
func (c *Config) clientCredentials(bad badFunc) {
	ok := true
	if c.GatewayOAuthTokenURL == "" {
		bad("GATEWAY_OAUTH_TOKEN_URL", "required with RELAY_GATEWAY_OAUTH_CLIENT_ID, _CLIENT_SECRET and _SCOPE")
		ok = false
	} else if err := tokenURLProblem(c.GatewayOAuthTokenURL); err != "" {
		bad("GATEWAY_OAUTH_TOKEN_URL", "%s", err)
		ok = false
	}
	if c.GatewayOAuthClientID == "" {
		bad("GATEWAY_OAUTH_CLIENT_ID", "required with RELAY_GATEWAY_OAUTH_TOKEN_URL")
		ok = false
	}
	if c.GatewayOAuthClientSecret == "" {
		bad("GATEWAY_OAUTH_CLIENT_SECRET", "required with RELAY_GATEWAY_OAUTH_TOKEN_URL (or RELAY_GATEWAY_OAUTH_CLIENT_SECRET_FILE)")
		ok = false
	}
	scopes, err := parseScopes(c.GatewayOAuthScope)
	if err != "" {
		bad("GATEWAY_OAUTH_SCOPE", "%s", err)
		ok = false
	}
	if c.GatewayUsername == "" {
		bad("GATEWAY_USERNAME", "required with RELAY_GATEWAY_OAUTH_TOKEN_URL: the mailbox XOAUTH2 authenticates as")
		ok = false
	}
	if ok {
		fetch := outbound.ClientCredentialsFetch(c.GatewayOAuthTokenURL, c.GatewayOAuthClientID, c.GatewayOAuthClientSecret,
			scopes, outbound.DefaultTokenTimeout)
		c.oauth.tokens = outbound.NewTokens(fetch, c.GatewayOAuthTokenURL, outbound.DefaultTokenTimeout, nil)
	}
}

// googleServiceAccount checks RELAY_GATEWAY_GOOGLE_* (a service account
// with domain-wide delegation) and builds its token source.
func (c *Config) googleServiceAccount(bad badFunc) {
	ok := true
	subject := c.GatewayGoogleSubject
	switch {
	case subject == "":
		bad("GATEWAY_GOOGLE_SUBJECT", "required with RELAY_GATEWAY_GOOGLE_KEY_FILE: the user the service account acts as")
		ok = false
	case !strings.Contains(subject, "@") || strings.ContainsAny(subject, "\x00\x01\r\n \t"):
		bad("GATEWAY_GOOGLE_SUBJECT", "%q is not a user's address", subject)
		ok = false
	}
	if c.GatewayGoogleKeyFile == "" {
		bad("GATEWAY_GOOGLE_KEY_FILE", "required with RELAY_GATEWAY_GOOGLE_SUBJECT")
		return
	}
	b, err := os.ReadFile(c.GatewayGoogleKeyFile)
	if err != nil {
		bad("GATEWAY_GOOGLE_KEY_FILE", "%v", err)
		return
	}
	k, err := outbound.ParseServiceAccountKey(b)
	if err != nil {
		bad("GATEWAY_GOOGLE_KEY_FILE", "%s: %v", c.GatewayGoogleKeyFile, err)
		return
	}
	if !rsaKey(k.PrivateKey) {
		bad("GATEWAY_GOOGLE_KEY_FILE", "%s: \"private_key\" is not a PEM RSA private key", c.GatewayGoogleKeyFile)
		ok = false
	}
	if p := tokenURLProblem(k.TokenURI); p != "" {
		bad("GATEWAY_GOOGLE_KEY_FILE", "%s: \"token_uri\" %s", c.GatewayGoogleKeyFile, p)
		ok = false
	}
	if ok {
		// The subject is the SASL user unless RELAY_GATEWAY_USERNAME
		// says otherwise: RELAY_GATEWAY's first SMTP gateway gets it.
		if c.GatewayUsername == "" {
			c.GatewayUsername = subject
		}
		c.oauth.tokens = outbound.NewTokens(outbound.JWTFetch(k, subject, outbound.DefaultTokenTimeout),
			k.TokenURI, outbound.DefaultTokenTimeout, nil)
	}
}

// tokenURLProblem says what is wrong with a token endpoint's URL, "" when
// nothing: it must be https (the client secret or the signed assertion
// goes there), or http to a loopback address (a local stand-in), and carry
// no user information.
func tokenURLProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute URL", s)
	}
	if u.User != nil {
		return "must not carry user information"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if u.Hostname() == "localhost" {
			return ""
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.IsLoopback() {
			return ""
		}
		return "must be https (http only to a loopback address)"
	}
	return fmt.Sprintf("%q: want an https URL", s)
}

// parseScopes splits RELAY_GATEWAY_OAUTH_SCOPE at commas; a scope is
// RFC 6749 §3.3's scope-token (printable ASCII without space, '"' or '\').
func parseScopes(s string) ([]string, string) {
	var scopes []string
	for _, sc := range strings.Split(s, ",") {
		if sc = strings.TrimSpace(sc); sc == "" {
			continue
		}
		for i := 0; i < len(sc); i++ {
			if sc[i] <= ' ' || sc[i] > '~' || sc[i] == '"' || sc[i] == '\\' {
				return nil, fmt.Sprintf("%q is not a scope (RFC 6749 §3.3); separate scopes with commas", sc)
			}
		}
		scopes = append(scopes, sc)
	}
	return scopes, ""
}

// rsaKey reports whether s is a PEM RSA private key, PKCS #8 or #1, as
// the JWT grant signs with (RS256).
func rsaKey(s string) bool {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return false
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		_, ok := k.(*rsa.PrivateKey)
		return ok
	}
	_, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	return err == nil
}
