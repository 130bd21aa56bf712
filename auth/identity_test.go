package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestCanonicalIdentity (issue 8 item 12): both spellings of an LDAP
// login resolve to one canonical identity, the entry's DN.
func TestCanonicalIdentity(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	a := New(Options{Password: []PasswordBackend{b}, FailureDelay: -1})
	ctx := context.Background()
	id1, err := a.Password(ctx, "192.0.2.1", "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := a.Password(ctx, "192.0.2.1", "Alice@Example.org", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	wantID := "ldap:uid=alice,ou=people," + testBaseDN
	if id1.Canonical != wantID || id2.Canonical != wantID || id1.LimitKey() != id2.LimitKey() {
		t.Fatalf("canonical %q and %q, want both %q", id1.Canonical, id2.Canonical, wantID)
	}
}

// TestLoginWhitespaceRefused (issue 8 item 12): a name with white space
// around it is bad credentials, and the directory is not asked.
func TestLoginWhitespaceRefused(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	a := New(Options{Password: []PasswordBackend{b}, FailureDelay: -1, MaxFailures: 100})
	for _, u := range []string{" alice", "alice ", "\talice@example.org", "alice\r\n"} {
		if _, err := a.Password(context.Background(), "192.0.2.9", u, "alicepw"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%q: %v, want ErrBadCredentials", u, err)
		}
	}
	if n := len(d.allFilters()); n != 0 {
		t.Errorf("names with white space reached the directory (%d searches)", n)
	}
}

// TestCanonicalThrottle (issue 8 item 12): wrong guesses in different
// spellings of one entry, from different clients, share one failure count;
// once it is at the limit the right password in yet another spelling is
// throttled, and no bind is sent for it.
func TestCanonicalThrottle(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	a := New(Options{Password: []PasswordBackend{b}, MaxFailures: 3, FailureDelay: -1})
	ctx := context.Background()
	for i, u := range []string{"alice", "alice@example.org", "ALICE"} {
		if _, err := a.Password(ctx, fmt.Sprintf("198.51.100.%d", i), u, "guess"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d as %q: %v", i, u, err)
		}
	}
	binds := len(d.bindDNs())
	if _, err := a.Password(ctx, "203.0.113.6", "Alice@example.ORG", "alicepw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right password after 3 failures in other spellings: %v, want ErrThrottled", err)
	}
	for _, dn := range d.bindDNs()[binds:] {
		if dn != d.svcDN {
			t.Errorf("a locked identity was bound as %s", dn)
		}
	}
	// Another entry is not affected.
	if _, err := a.Password(ctx, "203.0.113.6", "bob", "bobpw"); err != nil {
		t.Fatal(err)
	}
}
