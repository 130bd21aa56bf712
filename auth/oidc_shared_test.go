package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
)

// TestSharedIssuerConsumersTenant (review of issue 8 item 19): the issuer of
// every personal Microsoft account names the consumers tenant by its ID;
// configured without an allow-list it admitted any Outlook.com account.
func TestSharedIssuerConsumersTenant(t *testing.T) {
	for _, iss := range []string{
		"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
		"https://login.microsoftonline.com/9188040D-6C67-4C5B-B112-36A304B66DAD/v2.0/",
	} {
		if !SharedIssuer(iss) {
			t.Errorf("SharedIssuer(%q) = false: the consumers tenant serves every personal account", iss)
		}
	}
}

// TestEntraSharedIssuerNeedsTenants (review of issue 8 item 19): Entra ID's
// email claim is not verified (a tenant admin sets any address; a personal
// account may carry a former employer's), so for a shared Entra issuer a
// domain allow-list alone restricts nothing: the configuration is refused
// at start (nothing is dialled), and the claim check refuses such a token.
func TestEntraSharedIssuerNeedsTenants(t *testing.T) {
	const iss = "https://login.microsoftonline.com/common/v2.0"
	noDial := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("tests dial loopback only")
	}}}
	_, err := NewOIDCBackend(context.Background(), OIDCConfig{Issuer: iss, Audience: "a", HTTPClient: noDial,
		AllowedDomains: []string{"corp.example"}}, nil)
	if !errors.Is(err, ErrSharedIssuer) {
		t.Errorf("shared Entra issuer with domains only: %v, want ErrSharedIssuer", err)
	}
	// An attacker's own tenant, whose admin gave a user the victim's domain.
	claims := map[string]any{"email": "ceo@corp.example", "tid": "attacker-tenant", "hd": "corp.example"}
	if err := newAllowList([]string{"corp.example"}, nil).check(iss, claims, "ceo@corp.example"); err == nil {
		t.Error("a shared Entra issuer's token admitted on its (unverified) email domain without a tenant list")
	}
	if err := newAllowList([]string{"corp.example"}, []string{"corp-tenant"}).check(iss, claims, "ceo@corp.example"); err == nil {
		t.Error("a token of a tenant that is not listed was admitted")
	}
	claims["tid"] = "corp-tenant"
	if err := newAllowList([]string{"corp.example"}, []string{"corp-tenant"}).check(iss, claims, "ceo@corp.example"); err != nil {
		t.Errorf("listed tenant and domain: %v", err)
	}
}
