package main

import (
	"strings"
	"testing"
)

// TestAttackOAuthGatewayWithoutTLS: an OAuth2 token source whose gateway
// (RELAY_GATEWAY's first SMTP gateway) has no TLS is a start-up error: a
// token is never sent in clear, and without the error the relay started
// and sent mail to that gateway without AUTH, the token source unused.
// Both grants, both forms of a gateway without TLS (smtp+insecure:// and
// host:port with RELAY_GATEWAY_TLS=none).
func TestAttackOAuthGatewayWithoutTLS(t *testing.T) {
	m365 := map[string]string{
		"RELAY_GATEWAY_USERNAME":            "relay@example.org",
		"RELAY_GATEWAY_OAUTH_TOKEN_URL":     "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
		"RELAY_GATEWAY_OAUTH_CLIENT_ID":     "id",
		"RELAY_GATEWAY_OAUTH_CLIENT_SECRET": oauthTestSecret,
		"RELAY_GATEWAY_OAUTH_SCOPE":         "https://outlook.office365.com/.default",
	}
	google := map[string]string{
		"RELAY_GATEWAY_GOOGLE_KEY_FILE": googleKeyFile(t, "https://oauth2.googleapis.com/token", nil),
		"RELAY_GATEWAY_GOOGLE_SUBJECT":  "relay@example.org",
	}
	for _, grant := range []struct {
		name string
		env  map[string]string
	}{{"client credentials", m365}, {"google", google}} {
		for _, gw := range []struct {
			name string
			env  map[string]string
		}{
			{"smtp+insecure", map[string]string{"RELAY_GATEWAY": "smtp+insecure://127.0.0.1:2525"}},
			{"host:port TLS none", map[string]string{"RELAY_GATEWAY": "127.0.0.1:2525", "RELAY_GATEWAY_TLS": "none"}},
		} {
			t.Run(grant.name+" "+gw.name, func(t *testing.T) {
				for k, v := range grant.env {
					t.Setenv(k, v)
				}
				for k, v := range gw.env {
					t.Setenv(k, v)
				}
				_, err := loadConfig()
				if err == nil {
					t.Fatal("no error: the token source's gateway has no TLS and would get no AUTH")
				}
				found := false
				for _, l := range strings.Split(err.Error(), "\n") {
					if strings.Contains(l, "TLS") && (strings.HasPrefix(l, "RELAY_GATEWAY:") || strings.HasPrefix(l, "RELAY_GATEWAY_TLS:") ||
						strings.HasPrefix(l, "RELAY_GATEWAY_USERNAME:") || strings.HasPrefix(l, "RELAY_GATEWAY_OAUTH_TOKEN_URL:") ||
						strings.HasPrefix(l, "RELAY_GATEWAY_GOOGLE_KEY_FILE:")) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line about the gateway's TLS in\n%s", err)
				}
				if strings.Contains(err.Error(), oauthTestSecret) {
					t.Errorf("error shows the secret: %v", err)
				}
			})
		}
	}
}

// TestAttackOAuthWithoutGateway: a token source with nothing to use it is
// a start-up error: without RELAY_GATEWAY (delivery by MX: the relay
// started and sent everything by MX, the token source unused), or with
// only ses:// gateways.
func TestAttackOAuthWithoutGateway(t *testing.T) {
	for _, tc := range []struct{ gateway, want string }{
		{"", "RELAY_GATEWAY_GOOGLE_KEY_FILE: set without RELAY_GATEWAY"},
		{"ses://eu-west-1", "RELAY_GATEWAY_USERNAME: RELAY_GATEWAY has no SMTP gateway"},
	} {
		t.Run(tc.gateway, func(t *testing.T) {
			t.Setenv("RELAY_GATEWAY", tc.gateway)
			t.Setenv("RELAY_GATEWAY_GOOGLE_KEY_FILE", googleKeyFile(t, "https://oauth2.googleapis.com/token", nil))
			t.Setenv("RELAY_GATEWAY_GOOGLE_SUBJECT", "relay@example.org")
			_, err := loadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a line %q", err, tc.want)
			}
		})
	}
	t.Setenv("RELAY_GATEWAY", "")
	t.Setenv("RELAY_GATEWAY_USERNAME", "relay@example.org")
	t.Setenv("RELAY_GATEWAY_OAUTH_TOKEN_URL", "https://login.microsoftonline.com/tenant/oauth2/v2.0/token")
	t.Setenv("RELAY_GATEWAY_OAUTH_CLIENT_ID", "id")
	t.Setenv("RELAY_GATEWAY_OAUTH_CLIENT_SECRET", oauthTestSecret)
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "RELAY_GATEWAY_OAUTH_TOKEN_URL: set without RELAY_GATEWAY") {
		t.Errorf("client credentials without RELAY_GATEWAY: %v", err)
	}
}

// TestAttackGatewayPasswordControl: a gateway password with a control
// character (a NUL ends a PLAIN password, RFC 4616 §2) is a start-up
// error naming where it came from, as in the credentials file; the error
// does not show it.
func TestAttackGatewayPasswordControl(t *testing.T) {
	const pw = "pass\x00authz"
	t.Setenv("RELAY_GATEWAY", "smtp://smtp.example.net:587")
	t.Setenv("RELAY_GATEWAY_USERNAME", "relay@example.org")
	t.Setenv("RELAY_GATEWAY_PASSWORD_FILE", writeFile(t, pw+"\n"))
	_, err := loadConfig()
	if err == nil || !strings.Contains(err.Error(), "RELAY_GATEWAY_PASSWORD_FILE: contains a control character") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error shows the password: %v", err)
	}
}
