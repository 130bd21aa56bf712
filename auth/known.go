package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// AddressBook is an identity backend that can say whether an address is
// one of its users' (for the MX listener's recipient check): the users
// file and LDAP. An OIDC provider has no such list.
type AddressBook interface {
	// KnownAddress reports whether addr is a user's address; an error
	// wrapping ErrUnavailable when the backend could not say.
	KnownAddress(ctx context.Context, addr string) (bool, error)
}

// KnownAddress implements AddressBook: addr is a user name that is an
// address, or one of a user's listed addresses, compared as MaySend
// compares them (ASCII case-insensitively).
func (f *FileBackend) KnownAddress(_ context.Context, addr string) (bool, error) {
	f.maybeReload()
	for _, u := range f.users.Load().byName {
		if strings.EqualFold(u.name, addr) {
			return true, nil
		}
		for _, a := range u.addresses {
			if strings.EqualFold(a, addr) {
				return true, nil
			}
		}
	}
	return false, nil
}

// KnownAddress implements AddressBook: one search as the service account,
// under the base DN, for an entry with addr in one of the address
// attributes (the same that give a user's sender addresses).
func (b *LDAPBackend) KnownAddress(ctx context.Context, addr string) (bool, error) {
	var f strings.Builder
	f.WriteString("(|")
	for _, a := range b.attrs {
		f.WriteString("(" + ldap.EscapeFilter(a) + "=" + ldap.EscapeFilter(addr) + ")")
	}
	f.WriteString(")")
	req := ldap.NewSearchRequest(b.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1, int(b.cfg.Timeout/time.Second), false, f.String(), []string{"1.1"}, nil)
	var res *ldap.SearchResult
	err := b.search.with(ctx, func(c *ldapConn) error {
		return c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error {
			var err error
			res, err = l.Search(req)
			return err
		})
	})
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return true, nil // more than one entry has it
	case err != nil:
		return false, b.unavailable("search", err)
	}
	return len(res.Entries) > 0, nil
}

// Addresses asks several address books in turn: an address one of them
// knows is known; one that none knows while one of them could not answer
// is that backend's error (a directory outage is never "unknown").
type Addresses []AddressBook

// KnownAddress implements AddressBook.
func (as Addresses) KnownAddress(ctx context.Context, addr string) (bool, error) {
	var errs []error
	for _, a := range as {
		ok, err := a.KnownAddress(ctx, addr)
		if ok {
			return true, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return false, errors.Join(errs...)
}
