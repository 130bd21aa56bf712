package auth

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestSlapd runs the LDAP backend against a real OpenLDAP started by
// scripts/ldap-test.sh:
//
//	eval "$(scripts/ldap-test.sh start)" && go test ./auth -run Slapd -v; scripts/ldap-test.sh stop
//
// It is skipped when EDGERELAY_SLAPD_URL is not set.
func TestSlapd(t *testing.T) {
	plain := os.Getenv("EDGERELAY_SLAPD_URL")
	if plain == "" {
		t.Skip("EDGERELAY_SLAPD_URL not set; see scripts/ldap-test.sh")
	}
	ldaps, ca := os.Getenv("EDGERELAY_SLAPD_LDAPS_URL"), os.Getenv("EDGERELAY_SLAPD_CA")
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	base := LDAPConfig{
		BindDN:       "cn=relay,dc=example,dc=org",
		BindPassword: "relaypw",
		BaseDN:       "dc=example,dc=org",
		PoolSize:     2,
	}
	modes := []struct {
		name string
		mod  func(*LDAPConfig)
	}{
		{"plain", func(c *LDAPConfig) { c.URL = plain }},
		{"StartTLS", func(c *LDAPConfig) { c.URL, c.StartTLS, c.CAFile = plain, true, ca }},
		{"LDAPS", func(c *LDAPConfig) { c.URL, c.CAFile = ldaps, ca }},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if m.name != "plain" && (ldaps == "" || ca == "") {
				t.Skip("EDGERELAY_SLAPD_LDAPS_URL or EDGERELAY_SLAPD_CA not set")
			}
			cfg := base
			m.mod(&cfg)
			b, err := NewLDAPBackend(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			if err := b.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			for _, login := range []string{"alice", "a.example@example.org"} {
				id, err := b.CheckPassword(ctx, login, "alicepw")
				if err != nil {
					t.Fatalf("%s: %v", login, err)
				}
				want := []string{"alice@example.org", "a.example@example.org"}
				if id.User != login || !slices.Equal(id.Addresses, want) {
					t.Errorf("%s: identity %+v", login, id)
				}
				if id.MaySend("bob@example.org") {
					t.Error("alice may send as bob")
				}
			}
			for _, tc := range []struct{ user, pass string }{
				{"alice", "bobpw"}, {"nobody", "x"}, {"alice", ""}, {"*", "alicepw"}, {"*)(uid=*", "alicepw"},
			} {
				_, err := b.CheckPassword(ctx, tc.user, tc.pass)
				if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
					t.Errorf("%s/%s: %v, want ErrBadCredentials", tc.user, tc.pass, err)
				}
			}
			// A wrong service password is an outage, not the user's fault.
			cfg.BindPassword = "wrong"
			bad, _ := NewLDAPBackend(cfg, nil)
			defer bad.Close()
			if _, err := bad.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("wrong service password: %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("untrusted CA", func(t *testing.T) {
		if ldaps == "" {
			t.Skip("EDGERELAY_SLAPD_LDAPS_URL not set")
		}
		cfg := base
		cfg.URL, cfg.CAFile = ldaps, newTestPKI(t).caFile
		b, _ := NewLDAPBackend(cfg, nil)
		defer b.Close()
		_, err := b.CheckPassword(context.Background(), "alice", "alicepw")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("got %v, want ErrUnavailable about the certificate", err)
		}
	})
}
