package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestKnownAddress: the users file knows its user names that are addresses
// and their listed addresses (any case); LDAP knows the values of the
// address attributes; a directory that is down is an error, never
// "unknown"; Addresses combines them.
func TestKnownAddress(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users")
	line := "carol@example.org:$2a$04$abcdefghijklmnopqrstuu5fW4hfCFWj8Nd7tBCFcFbYwaXl1ZImC:sales@example.org\nplainname:$2a$04$abcdefghijklmnopqrstuu5fW4hfCFWj8Nd7tBCFcFbYwaXl1ZImC\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	fb, err := NewFileBackend(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDirectory(t, nil, false)
	lb, _ := newTestLDAP(t, d, nil)
	for _, tc := range []struct {
		b    AddressBook
		addr string
		want bool
	}{
		{fb, "carol@example.org", true},
		{fb, "CAROL@Example.ORG", true},
		{fb, "sales@example.org", true},
		{fb, "plainname", true},
		{fb, "nobody@example.org", false},
		{lb, "alice@example.org", true},
		{lb, "a.example@example.org", true}, // mailAlternateAddress
		{lb, "bob@example.org", true},
		{lb, "nobody@example.org", false},
		{lb, "*", false},         // escaped, no wildcard
		{lb, "x)(mail=*", false}, // escaped, no injection
		{Addresses{fb, lb}, "sales@example.org", true},
		{Addresses{fb, lb}, "bob@example.org", true},
		{Addresses{fb, lb}, "nobody@example.org", false},
	} {
		got, err := tc.b.KnownAddress(ctx, tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("%T %q: %v %v, want %v", tc.b, tc.addr, got, err, tc.want)
		}
	}
	d.stop()
	if _, err := lb.KnownAddress(ctx, "alice@example.org"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("directory down: %v, want ErrUnavailable", err)
	}
	if ok, err := (Addresses{fb, lb}).KnownAddress(ctx, "nobody@example.org"); ok || !errors.Is(err, ErrUnavailable) {
		t.Errorf("unknown to the file, directory down: %v %v", ok, err)
	}
	if ok, err := (Addresses{fb, lb}).KnownAddress(ctx, "carol@example.org"); !ok || err != nil {
		t.Errorf("known to the file, directory down: %v %v", ok, err)
	}
}
