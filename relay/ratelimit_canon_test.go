package relay

import (
	"context"
	"testing"

	"github.com/edgerelay/edgerelay/auth"
)

// spellingAuth accepts alicePW for any spelling of alice and names one
// canonical identity for all of them, as the LDAP backend does.
type spellingAuth struct{}

func (spellingAuth) Password(_ context.Context, _, user, pw string) (*auth.Identity, error) {
	if pw != alicePW {
		return nil, auth.ErrBadCredentials
	}
	return &auth.Identity{User: user, Addresses: []string{alice}, Backend: "ldap",
		Canonical: "ldap:uid=alice,ou=people,dc=example,dc=org"}, nil
}
func (spellingAuth) Token(context.Context, string, string, string) (*auth.Identity, error) {
	return nil, auth.ErrBadCredentials
}
func (spellingAuth) HasPassword() bool { return true }
func (spellingAuth) HasToken() bool    { return false }

// TestRateLimitCanonical (issue 8 item 12): the hourly recipient bucket is
// the account's, not the login spelling's.
func TestRateLimitCanonical(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRecipientsPerHour = 2; o.Auth = spellingAuth{} })
	c := e.authed("alice", alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<a@example.net>")
	c.must(250, "", "RCPT TO:<b@example.net>")
	c2 := e.authed("alice@example.org", alicePW)
	c2.must(250, "", "MAIL FROM:<%s>", alice)
	c2.must(450, "4.7.1", "RCPT TO:<c@example.net>")
}
