package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func newTestOIDC(t *testing.T, is *testIssuer, mod func(*OIDCConfig)) (*OIDCBackend, *logBuffer) {
	t.Helper()
	cfg := OIDCConfig{
		Issuer:       is.url,
		Audience:     testAudience,
		HTTPClient:   is.srv.Client(),
		ClientID:     is.clientID,
		ClientSecret: is.clientPass,
	}
	if mod != nil {
		mod(&cfg)
	}
	log, lb := newTestLogger()
	b, err := NewOIDCBackend(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	b.retryEvery = 0
	return b, lb
}

func TestOIDCTokens(t *testing.T) {
	is := newTestIssuer(t)
	b, _ := newTestOIDC(t, is, nil)
	other := newTestKey(t, "k1", jose.RS256) // same kid, different key
	now := time.Now()
	with := func(mod func(map[string]any)) map[string]any {
		c := is.stdClaims("alice@example.org")
		mod(c)
		return c
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"good", is.sign(is.stdClaims("alice@example.org")), nil},
		{"no nbf", is.sign(with(func(c map[string]any) { delete(c, "nbf") })), nil},
		{"nbf within leeway", is.sign(with(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() })), nil},
		{"expired", is.sign(with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), ErrBadCredentials},
		{"not yet valid", is.sign(with(func(c map[string]any) { c["nbf"] = now.Add(3 * time.Minute).Unix() })), ErrBadCredentials},
		{"wrong audience", is.sign(with(func(c map[string]any) { c["aud"] = "someone-else" })), ErrBadCredentials},
		{"audience list", is.sign(with(func(c map[string]any) { c["aud"] = []string{"x", testAudience} })), nil},
		{"wrong issuer", is.sign(with(func(c map[string]any) { c["iss"] = "https://evil.example" })), ErrBadCredentials},
		{"bad signature", signWith(t, other, is.stdClaims("alice@example.org")), ErrBadCredentials},
		{"alg none", unsignedToken(is.stdClaims("alice@example.org")), ErrBadCredentials},
		{"HS256 with the public key", hs256WithPublicKey(t, is.signing, is.stdClaims("alice@example.org")), ErrBadCredentials},
		{"email not verified", is.sign(with(func(c map[string]any) { c["email_verified"] = false })), ErrBadCredentials},
		{"email not verified (string)", is.sign(with(func(c map[string]any) { c["email_verified"] = "false" })), ErrBadCredentials},
		{"no email claim", is.sign(with(func(c map[string]any) { delete(c, "email") })), ErrBadCredentials},
		{"garbage", "not.a.jwt", ErrBadCredentials},
		{"two parts", "abc.def", ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := b.CheckToken(context.Background(), tc.token)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || errors.Is(err, ErrUnavailable) {
					t.Fatalf("got %+v, %v; want %v", id, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.User != "alice@example.org" || id.Backend != "oidc" || !id.MaySend("alice@example.org") {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

func TestOIDCES256(t *testing.T) {
	is := newTestIssuer(t)
	is.rotate(newTestKey(t, "ec1", jose.ES256))
	b, _ := newTestOIDC(t, is, nil)
	if _, err := b.CheckToken(context.Background(), is.sign(is.stdClaims("alice@example.org"))); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	is := newTestIssuer(t)
	b, _ := newTestOIDC(t, is, nil)
	ctx := context.Background()
	old := is.sign(is.stdClaims("alice@example.org"))
	if _, err := b.CheckToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	hits := is.jwksHits.Load()
	if _, err := b.CheckToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	if is.jwksHits.Load() != hits {
		t.Error("JWKS refetched for a known key")
	}

	is.rotate(newTestKey(t, "k2", jose.RS256))
	if _, err := b.CheckToken(ctx, is.sign(is.stdClaims("alice@example.org"))); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	if is.jwksHits.Load() == hits {
		t.Error("JWKS was not refetched for the new kid")
	}
	// The old key is no longer published: its tokens no longer verify.
	// go-oidc's RemoteKeySet wakes the caller that triggered a refetch just
	// before it swaps its key cache, so for a moment the cache may still
	// hold the retired key: wait for the swap (bounded), then it must fail.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := b.CheckToken(ctx, old)
		if errors.Is(err, ErrBadCredentials) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token signed with the retired key: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOIDCIssuerDown(t *testing.T) {
	ctx := context.Background()
	t.Run("down at startup, then up", func(t *testing.T) {
		is := newTestIssuer(t)
		is.down.Store(true)
		b, lb := newTestOIDC(t, is, nil) // does not fail
		tok := is.sign(is.stdClaims("alice@example.org"))
		if _, err := b.CheckToken(ctx, tok); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("issuer down: %v, want ErrUnavailable", err)
		}
		if !strings.Contains(lb.String(), "discovery failed") {
			t.Errorf("startup discovery failure not logged:\n%s", lb)
		}
		is.down.Store(false)
		if _, err := b.CheckToken(ctx, tok); err != nil {
			t.Fatalf("issuer back: %v", err)
		}
	})
	t.Run("retry is rate limited", func(t *testing.T) {
		is := newTestIssuer(t)
		is.down.Store(true)
		b, _ := newTestOIDC(t, is, nil)
		b.retryEvery = time.Hour
		is.down.Store(false)
		if _, err := b.CheckToken(ctx, is.sign(is.stdClaims("alice@example.org"))); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("within the retry interval: %v, want the remembered ErrUnavailable", err)
		}
	})
	t.Run("JWKS down with a new key", func(t *testing.T) {
		is := newTestIssuer(t)
		b, _ := newTestOIDC(t, is, nil)
		if _, err := b.CheckToken(ctx, is.sign(is.stdClaims("alice@example.org"))); err != nil {
			t.Fatal(err)
		}
		is.rotate(newTestKey(t, "k9", jose.ES256))
		is.down.Store(true)
		if _, err := b.CheckToken(ctx, is.sign(is.stdClaims("alice@example.org"))); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("unknown kid, JWKS unreachable: %v, want ErrUnavailable", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		is := newTestIssuer(t)
		is.srv.Close()
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.PasswordGrant = true })
		if _, err := b.CheckToken(ctx, "a.b.c"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if _, err := b.CheckPassword(ctx, "alice@example.org", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("password grant: %v, want ErrUnavailable", err)
		}
	})
}

func TestOIDCClaims(t *testing.T) {
	is := newTestIssuer(t)
	ctx := context.Background()
	t.Run("address claim array", func(t *testing.T) {
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.AddressClaim = "aliases" })
		c := is.stdClaims("alice@example.org")
		c["aliases"] = []string{"a.example@example.org", "ALICE@example.org", "sales@example.org"}
		id, err := b.CheckToken(ctx, is.sign(c))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"alice@example.org", "a.example@example.org", "sales@example.org"}
		if !slices.Equal(id.Addresses, want) {
			t.Errorf("addresses %q, want %q", id.Addresses, want)
		}
		if id.MaySend("bob@example.org") {
			t.Error("other address allowed")
		}
	})
	t.Run("address claim string", func(t *testing.T) {
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.AddressClaim = "alias" })
		c := is.stdClaims("alice@example.org")
		c["alias"] = "a.example@example.org"
		id, err := b.CheckToken(ctx, is.sign(c))
		if err != nil || !id.MaySend("a.example@example.org") {
			t.Fatalf("%+v, %v", id, err)
		}
	})
	t.Run("other user claim", func(t *testing.T) {
		b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.UserClaim, c.AddressClaim = "preferred_username", "email" })
		c := is.stdClaims("alice@example.org")
		c["preferred_username"] = "alice"
		c["email_verified"] = false // only checked when the user claim is email
		id, err := b.CheckToken(ctx, is.sign(c))
		if err != nil {
			t.Fatal(err)
		}
		if id.User != "alice" || !slices.Equal(id.Addresses, []string{"alice@example.org"}) {
			t.Errorf("identity %+v", id)
		}
	})
}

func TestOIDCPasswordGrant(t *testing.T) {
	is := newTestIssuer(t)
	ctx := context.Background()
	b, lb := newTestOIDC(t, is, func(c *OIDCConfig) { c.PasswordGrant = true })

	id, err := b.CheckPassword(ctx, "alice@example.org", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice@example.org" || id.Backend != "oidc" {
		t.Errorf("identity %+v", id)
	}
	for _, tc := range []struct{ user, pass string }{
		{"alice@example.org", "wrong"},
		{"mallory@example.org", "alicepw"},
		{"alice@example.org", ""},
	} {
		if _, err := b.CheckPassword(ctx, tc.user, tc.pass); !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s/%s: %v, want ErrBadCredentials", tc.user, tc.pass, err)
		}
	}
	is.tokenDown.Store(true)
	if _, err := b.CheckPassword(ctx, "alice@example.org", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("token endpoint down: %v, want ErrUnavailable", err)
	}
	is.tokenDown.Store(false)

	// Our client's credentials are wrong: not the user's fault.
	bad, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.PasswordGrant, c.ClientSecret = true, "nope" })
	if _, err := bad.CheckPassword(ctx, "alice@example.org", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("invalid_client: %v, want ErrUnavailable", err)
	}
	// Not enabled: refuses without asking the issuer.
	off, _ := newTestOIDC(t, is, nil)
	if _, err := off.CheckPassword(ctx, "alice@example.org", "alicepw"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("grant disabled: %v", err)
	}
	if strings.Contains(lb.String(), "alicepw") {
		t.Error("a password reached the log")
	}
}

func TestOIDCThroughAuthenticator(t *testing.T) {
	is := newTestIssuer(t)
	b, _ := newTestOIDC(t, is, func(c *OIDCConfig) { c.PasswordGrant = true })
	a := New(Options{Token: []TokenBackend{b}, Password: []PasswordBackend{b}, FailureDelay: -1})
	ctx := context.Background()
	tok := is.sign(is.stdClaims("alice@example.org"))
	if _, err := a.Token(ctx, "192.0.2.1", "alice@example.org", tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Token(ctx, "192.0.2.1", "bob@example.org", tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("authzid mismatch: %v", err)
	}
	if _, err := a.Password(ctx, "192.0.2.1", "alice@example.org", "alicepw"); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCConfigErrors(t *testing.T) {
	for name, cfg := range map[string]OIDCConfig{
		"no issuer":            {Audience: "a"},
		"issuer not a URL":     {Issuer: "example.org", Audience: "a"},
		"no audience":          {Issuer: "https://example.org"},
		"grant with no client": {Issuer: "https://example.org", Audience: "a", PasswordGrant: true},
	} {
		if _, err := NewOIDCBackend(context.Background(), cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
