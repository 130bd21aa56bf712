package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSharedIssuer (issue 8 item 19): which issuers serve any account of
// any organisation, decided from the URL alone (nothing is dialled).
func TestSharedIssuer(t *testing.T) {
	for issuer, want := range map[string]bool{
		"https://accounts.google.com":                                                 true,
		"https://accounts.google.com/":                                                true,
		"https://ACCOUNTS.GOOGLE.COM":                                                 true,
		"accounts.google.com":                                                         true,
		"https://login.microsoftonline.com/common/v2.0":                               true,
		"https://login.microsoftonline.com/organizations/v2.0":                        true,
		"https://login.microsoftonline.com/consumers/v2.0":                            true,
		"https://login.microsoftonline.com/{tenantid}/v2.0":                           true,
		"https://login.microsoftonline.com/Common/v2.0/":                              true,
		"https://login.microsoftonline.com/common":                                    true,
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0": false,
		"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0":              false,
		"https://sts.windows.net/{tenantid}/":                                         true,
		"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/":               false,
		"https://idp.example.org/realms/corp":                                         false,
		"https://accounts.google.com.evil.example":                                    false,
		"https://127.0.0.1:8443":                                                      false,
	} {
		if got := SharedIssuer(issuer); got != want {
			t.Errorf("SharedIssuer(%q) = %v, want %v", issuer, got, want)
		}
	}
}

// TestOIDCSharedIssuerNeedsAllowList: a shared issuer without an allow-list
// is a configuration error, found before anything is dialled.
func TestOIDCSharedIssuerNeedsAllowList(t *testing.T) {
	for _, iss := range []string{"https://accounts.google.com", "https://login.microsoftonline.com/common/v2.0"} {
		// A client that cannot dial anything: even a wrong implementation
		// would not reach the real issuer from a test.
		noDial := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("tests dial loopback only")
		}}}
		_, err := NewOIDCBackend(context.Background(), OIDCConfig{Issuer: iss, Audience: "a", HTTPClient: noDial}, nil)
		if !errors.Is(err, ErrSharedIssuer) {
			t.Errorf("%s without an allow-list: %v, want ErrSharedIssuer", iss, err)
		}
	}
}

// TestOIDCAllowList: tokens from outside the allowed domains or tenants are
// refused as bad credentials; allowed ones are accepted.
func TestOIDCAllowList(t *testing.T) {
	is := newTestIssuer(t)
	ctx := context.Background()
	with := func(user string, f func(map[string]any)) string {
		c := is.stdClaims(user)
		f(c)
		return is.sign(c)
	}
	none := func(map[string]any) {}
	t.Run("domains", func(t *testing.T) {
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.AllowedDomains = []string{"Example.org"} })
		for _, tc := range []struct {
			name, token string
			ok          bool
		}{
			{"hd allowed", with("alice@example.org", func(c map[string]any) { c["hd"] = "example.org" }), true},
			{"email domain allowed", with("alice@example.org", none), true},
			{"hd other", with("alice@example.org", func(c map[string]any) { c["hd"] = "evil.example" }), false},
			{"email other", with("mallory@evil.example", none), false},
			{"email subdomain", with("mallory@x.example.org", none), false},
		} {
			_, err := b.CheckToken(ctx, tc.token)
			if tc.ok && err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !tc.ok && (!errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable)) {
				t.Errorf("%s: %v, want ErrBadCredentials", tc.name, err)
			}
		}
	})
	t.Run("tenants", func(t *testing.T) {
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.AllowedTenants = []string{"11111111-2222-3333-4444-555555555555"} })
		for _, tc := range []struct {
			name, token string
			ok          bool
		}{
			{"tid allowed", with("alice@example.org", func(c map[string]any) { c["tid"] = "11111111-2222-3333-4444-555555555555" }), true},
			{"tid other", with("alice@example.org", func(c map[string]any) { c["tid"] = "99999999-2222-3333-4444-555555555555" }), false},
			{"no tid", with("alice@example.org", none), false},
		} {
			_, err := b.CheckToken(ctx, tc.token)
			if tc.ok && err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !tc.ok && (!errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable)) {
				t.Errorf("%s: %v, want ErrBadCredentials", tc.name, err)
			}
		}
	})
}

// TestOIDCAllowListGoogleNeedsHD: Google gives a verified email on any
// domain to a consumer account, so for Google only hd (Workspace) counts.
func TestOIDCAllowListGoogleNeedsHD(t *testing.T) {
	al := allowList{domains: []string{"example.org"}}
	claims := map[string]any{"email": "alice@example.org", "email_verified": true}
	if err := al.check("https://accounts.google.com", claims, "alice@example.org"); err == nil {
		t.Error("Google token without hd accepted on its email domain")
	}
	claims["hd"] = "example.org"
	if err := al.check("https://accounts.google.com", claims, "alice@example.org"); err != nil {
		t.Error(err)
	}
}

// FuzzOIDCAllowList: the issuer decision and the allow-list check read
// configuration and token claims (remote bytes). Invariants: SharedIssuer
// is true only for Google's and Microsoft's login hosts; a token passes a
// domain allow-list only if its hd, or (not Google) its email's domain, is
// listed, and a tenant allow-list only if its tid is listed. Each case must
// finish within 2 s.
func FuzzOIDCAllowList(f *testing.F) {
	f.Add("https://accounts.google.com", "example.org", "", "alice@example.org", "", "")
	f.Add("https://login.microsoftonline.com/common/v2.0", "", "tid-1", "a@b", "", "tid-1")
	f.Add("https://idp.example.org", "example.org", "", "a@evil.example", "example.org", "")
	f.Add("https://login.microsoftonline.com/%7Btenantid%7D/v2.0", "x", "y", "@", "X", "Y")
	f.Fuzz(func(t *testing.T, issuer, domain, tenant, email, hd, tid string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			shared := SharedIssuer(issuer)
			if shared {
				u, err := url.Parse(issuer)
				if !strings.Contains(issuer, "://") {
					u, err = url.Parse("https://" + issuer)
				}
				host := ""
				if err == nil {
					host = strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
				}
				if !isGoogleHost(host) && !slices.Contains(microsoftHosts, host) {
					t.Errorf("SharedIssuer(%q) for host %q", issuer, host)
				}
			}
			al := newAllowList([]string{domain}, []string{tenant})
			claims := map[string]any{"email": email, "email_verified": true}
			if hd != "" {
				claims["hd"] = hd
			}
			if tid != "" {
				claims["tid"] = tid
			}
			if al.check(issuer, claims, email) != nil {
				return
			}
			if len(al.tenants) == 0 && isMicrosoftSharedIssuer(issuer) {
				t.Errorf("a shared Entra issuer (%q) passed without a tenant list", issuer)
			}
			if len(al.tenants) > 0 && !slices.Contains(al.tenants, strings.ToLower(tid)) {
				t.Errorf("tid %q passed tenants %q", tid, al.tenants)
			}
			if len(al.domains) > 0 {
				at := strings.LastIndexByte(email, '@')
				okHD := hd != "" && slices.Contains(al.domains, strings.ToLower(hd))
				okMail := hd == "" && !isGoogleIssuer(issuer) && at >= 0 && slices.Contains(al.domains, strings.ToLower(email[at+1:]))
				if !okHD && !okMail {
					t.Errorf("hd %q / email %q passed domains %q (issuer %q)", hd, email, al.domains, issuer)
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("no answer within 2 s")
		}
	})
}
