package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jimlambrt/gldap"
)

func newTestLDAP(t *testing.T, d *testDirectory, mod func(*LDAPConfig)) (*LDAPBackend, *logBuffer) {
	t.Helper()
	cfg := LDAPConfig{
		URL:          d.url(),
		BindDN:       d.svcDN,
		BindPassword: d.svcPW,
		BaseDN:       testBaseDN,
		Timeout:      5 * time.Second,
		PoolSize:     2,
	}
	if mod != nil {
		mod(&cfg)
	}
	log, lb := newTestLogger()
	b, err := NewLDAPBackend(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, lb
}

func TestLDAPSearchThenBind(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, lb := newTestLDAP(t, d, nil)
	ctx := context.Background()

	tests := []struct {
		name, user, pass string
		want             error
	}{
		{"uid", "alice", "alicepw", nil},
		{"mail", "alice@example.org", "alicepw", nil},
		{"mail any case", "Alice@Example.ORG", "alicepw", nil},
		{"wrong password", "alice", "bobpw", ErrBadCredentials},
		{"unknown user", "mallory", "alicepw", ErrBadCredentials},
		{"found twice", "dup", "duppw", ErrBadCredentials},
		{"empty password", "alice", "", ErrBadCredentials},
		{"empty user", "", "alicepw", ErrBadCredentials},
		{"wildcard is escaped", "al*", "alicepw", ErrBadCredentials},
		{"injection is escaped", "*)(uid=*", "alicepw", ErrBadCredentials},
		{"injection via mail", "alice)(|(uid=*", "alicepw", ErrBadCredentials},
		{"overlong user", strings.Repeat("a", 300), "alicepw", ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := b.CheckPassword(ctx, tc.user, tc.pass)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || errors.Is(err, ErrUnavailable) {
					t.Fatalf("got %+v, %v; want %v", id, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.User != tc.user || id.Backend != "ldap" {
				t.Errorf("identity %+v", id)
			}
			want := []string{"alice@example.org", "a.example@example.org"}
			if !slices.Equal(id.Addresses, want) {
				t.Errorf("addresses %q, want %q", id.Addresses, want)
			}
			if !id.MaySend("a.example@example.org") {
				t.Error("alias (mailAlternateAddress) not allowed as sender")
			}
			if id.MaySend("bob@example.org") {
				t.Error("someone else's address allowed as sender")
			}
		})
	}
	if !strings.Contains(lb.String(), "found=2") {
		t.Errorf("no \"found 2 entries\" log line:\n%s", lb)
	}
	// The injection reached the server as one escaped value (RFC 4515 §3).
	for _, f := range d.allFilters() {
		if strings.Contains(f, "*)(uid=*") || strings.Contains(f, "(uid=al*)") {
			t.Errorf("unescaped filter reached the directory: %s", f)
		}
	}
	// No bind with an empty password was sent, and no user DN other than
	// the ones with a (non-empty) password attempt.
	for _, dn := range d.bindDNs() {
		if dn != d.svcDN && dn != "uid=alice,ou=people,"+testBaseDN {
			t.Errorf("unexpected bind as %q", dn)
		}
	}
	if strings.Contains(lb.String(), "alicepw") {
		t.Error("a password reached the log")
	}
}

func TestLDAPEmptyPasswordSendsNothing(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	if _, err := b.CheckPassword(context.Background(), "alice", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if binds := d.bindDNs(); len(binds) != 0 {
		t.Errorf("binds reached the server: %q", binds)
	}
}

func TestLDAPFilterEscapingSeenByServer(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	b.CheckPassword(context.Background(), "*)(uid=*", "x")
	want := `(uid=\2a\29\28uid=\2a)`
	if f := d.lastFilter(); !strings.Contains(f, want) {
		t.Errorf("filter %q does not contain %q", f, want)
	}
}

func TestLDAPAnonymousSearch(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	d.svcDN = "" // the directory lets anyone search
	b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.BindDN, c.BindPassword = "", "" })
	if _, err := b.CheckPassword(context.Background(), "bob", "bobpw"); err != nil {
		t.Fatal(err)
	}
}

func TestLDAPUnavailable(t *testing.T) {
	ctx := context.Background()
	t.Run("directory stopped", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		b, _ := newTestLDAP(t, d, nil)
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); err != nil {
			t.Fatal(err)
		}
		d.stop()
		_, err := b.CheckPassword(ctx, "alice", "alicepw")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if err := b.Ping(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("wrong service password", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.BindPassword = "nope" })
		// invalidCredentials for the service account is our configuration
		// problem, never the user's wrong password.
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		d.searchRC = gldap.ResultBusy
		b, _ := newTestLDAP(t, d, nil)
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("base DN missing", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.BaseDN = "dc=elsewhere,dc=net" })
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		d.stop()
		b, _ := newTestLDAP(t, d, nil)
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		b, _ := newTestLDAP(t, d, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.CheckPassword(cctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("StartTLS refused", func(t *testing.T) {
		d := newTestDirectory(t, nil, false)
		pki := newTestPKI(t)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.StartTLS, c.CAFile = true, pki.caFile })
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
}

func TestLDAPReconnectAfterRestart(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	ctx := context.Background()
	if _, err := b.CheckPassword(ctx, "alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	d.restart() // the pooled search and bind connections are now dead
	if _, err := b.CheckPassword(ctx, "alice", "alicepw"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if _, err := b.CheckPassword(ctx, "alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after restart, wrong password: %v", err)
	}
	// Half-dead pooled connections fail on first use and are retried once
	// on a fresh connection.
	d.sever()
	if _, err := b.CheckPassword(ctx, "alice", "alicepw"); err != nil {
		t.Fatalf("after sever: %v", err)
	}
}

func TestLDAPTLS(t *testing.T) {
	pki := newTestPKI(t)
	ctx := context.Background()
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	t.Run("StartTLS", func(t *testing.T) {
		d := newTestDirectory(t, pki.server, false)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.StartTLS, c.CAFile = true, pki.caFile })
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.CheckPassword(ctx, "alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	})
	t.Run("LDAPS", func(t *testing.T) {
		d := newTestDirectory(t, pki.server, true)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.CAFile = pki.caFile })
		if _, err := b.CheckPassword(ctx, "alice@example.org", "alicepw"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LDAPS untrusted CA", func(t *testing.T) {
		d := newTestDirectory(t, pki.server, true)
		other := newTestPKI(t)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.CAFile = other.caFile })
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("StartTLS untrusted CA", func(t *testing.T) {
		d := newTestDirectory(t, pki.server, false)
		other := newTestPKI(t)
		b, _ := newTestLDAP(t, d, func(c *LDAPConfig) { c.StartTLS, c.CAFile = true, other.caFile })
		if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
	})
}

func TestLDAPConcurrent(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			user, pw, want := "alice", "alicepw", error(nil)
			if i%3 == 0 {
				user, pw, want = "bob", "nope", ErrBadCredentials
			}
			_, err := b.CheckPassword(context.Background(), user, pw)
			if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
				errs <- fmt.Errorf("%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLDAPConfigErrors(t *testing.T) {
	for name, cfg := range map[string]LDAPConfig{
		"scheme":           {URL: "http://x", BaseDN: testBaseDN},
		"no host":          {URL: "ldap://", BaseDN: testBaseDN},
		"no base":          {URL: "ldap://x"},
		"bad base":         {URL: "ldap://x", BaseDN: "not a dn"},
		"no {user}":        {URL: "ldap://x", BaseDN: testBaseDN, Filter: "(uid=alice)"},
		"bad filter":       {URL: "ldap://x", BaseDN: testBaseDN, Filter: "(uid={user}"},
		"ldaps + StartTLS": {URL: "ldaps://x", BaseDN: testBaseDN, StartTLS: true},
		"CA file missing":  {URL: "ldaps://x", BaseDN: testBaseDN, CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := NewLDAPBackend(cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	b, err := NewLDAPBackend(LDAPConfig{URL: "ldaps://ldap.example.org", BaseDN: testBaseDN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.host != "ldap.example.org:636" || b.tls.ServerName != "ldap.example.org" || b.cfg.Filter != DefaultLDAPFilter {
		t.Errorf("defaults: host %s, server name %s, filter %s", b.host, b.tls.ServerName, b.cfg.Filter)
	}
}
