package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// DefaultLDAPFilter finds a person by login name or by mail address.
const DefaultLDAPFilter = "(&(objectClass=inetOrgPerson)(|(uid={user})(mail={user})))"

// Defaults for LDAPConfig.
const (
	DefaultLDAPTimeout  = 5 * time.Second
	DefaultLDAPPoolSize = 4
)

// maxLoginLen bounds the user names sent to the directory (an address is at
// most 254 octets, RFC 5321 §4.5.3.1.3 with the path limit).
const maxLoginLen = 256

// LDAPConfig configures an LDAPBackend.
type LDAPConfig struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection with the StartTLS extended
	// operation (RFC 4511 §4.14) before anything else is sent.
	StartTLS bool
	// CAFile is a PEM file of CA certificates to trust for ldaps:// and
	// StartTLS instead of the system roots.
	CAFile string
	// TLSConfig, if set, is the base TLS configuration (cloned; ServerName
	// defaults to the URL's host; CAFile, if also set, replaces RootCAs).
	TLSConfig *tls.Config
	// BindDN and BindPassword are the service account used for the search.
	// An empty BindDN searches anonymously.
	BindDN       string
	BindPassword string
	// BaseDN is where the search starts (whole subtree).
	BaseDN string
	// Filter finds the user; "{user}" is replaced by the login name escaped
	// per RFC 4515 §3. Empty means DefaultLDAPFilter.
	Filter string
	// AddressAttrs name the attributes whose values are the user's allowed
	// sender addresses. Empty means mail and mailAlternateAddress.
	AddressAttrs []string
	// Timeout bounds every connect, TLS handshake and request.
	// 0 means DefaultLDAPTimeout.
	Timeout time.Duration
	// PoolSize is the number of connections kept open for searches, and as
	// many again for user binds; it also bounds concurrent requests of each
	// kind. 0 means DefaultLDAPPoolSize.
	PoolSize int
}

// LDAPBackend checks passwords by search-then-bind (RFC 4513 §5.1.3): it
// looks the user up with the service account, requires exactly one entry,
// then binds as that entry's DN with the given password.
//
// Searches run on pooled connections that stay bound as the service account;
// user binds run on a second pool whose connections are re-bound for every
// check, so the two identities never mix on one connection. No lock is held
// across network I/O; every connect, handshake and request has a deadline.
type LDAPBackend struct {
	cfg    LDAPConfig
	host   string // host:port
	ldaps  bool
	tls    *tls.Config
	attrs  []string
	log    *slog.Logger
	search *ldapPool
	bind   *ldapPool
	health *ldapHealth
}

// NewLDAPBackend validates cfg and returns the backend. It does not connect:
// a directory that is down at startup makes logins answer ErrUnavailable
// until it comes back, not the relay fail to start. Use Ping to check.
func NewLDAPBackend(cfg LDAPConfig, logger *slog.Logger) (*LDAPBackend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("auth: LDAP URL %q: want ldap://host[:port] or ldaps://host[:port]", cfg.URL)
	}
	b := &LDAPBackend{cfg: cfg, log: logger.With("backend", "ldap")}
	b.health = newLDAPHealth(b.log)
	switch strings.ToLower(u.Scheme) {
	case "ldap":
		b.host = hostPort(u, "389")
	case "ldaps":
		if cfg.StartTLS {
			return nil, fmt.Errorf("auth: LDAP URL %q: StartTLS makes no sense with ldaps://", cfg.URL)
		}
		b.ldaps = true
		b.host = hostPort(u, "636")
	default:
		return nil, fmt.Errorf("auth: LDAP URL %q: scheme must be ldap or ldaps", cfg.URL)
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("auth: LDAP base DN is required")
	}
	if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("auth: LDAP base DN %q: %v", cfg.BaseDN, err)
	}
	if b.cfg.Filter == "" {
		b.cfg.Filter = DefaultLDAPFilter
	}
	if !strings.Contains(b.cfg.Filter, "{user}") {
		return nil, fmt.Errorf("auth: LDAP filter %q does not contain {user}", b.cfg.Filter)
	}
	if _, err := ldap.CompileFilter(b.filterFor("x")); err != nil {
		return nil, fmt.Errorf("auth: LDAP filter %q: %v", b.cfg.Filter, err)
	}
	b.attrs = cfg.AddressAttrs
	if len(b.attrs) == 0 {
		b.attrs = []string{"mail", "mailAlternateAddress"}
	}
	if b.cfg.Timeout <= 0 {
		b.cfg.Timeout = DefaultLDAPTimeout
	}
	if b.cfg.PoolSize <= 0 {
		b.cfg.PoolSize = DefaultLDAPPoolSize
	}
	if b.ldaps || cfg.StartTLS {
		if b.tls, err = ldapTLSConfig(cfg, u.Hostname()); err != nil {
			return nil, err
		}
	}
	b.search = newLDAPPool(b.cfg.PoolSize, func(ctx context.Context) (*ldapConn, error) {
		c, err := b.dial(ctx)
		if err != nil {
			return nil, err
		}
		if cfg.BindDN != "" {
			if err := c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error { return l.Bind(cfg.BindDN, cfg.BindPassword) }); err != nil {
				c.close()
				return nil, fmt.Errorf("service account bind: %w", err)
			}
		}
		return c, nil
	})
	b.bind = newLDAPPool(b.cfg.PoolSize, b.dial)
	b.search.abort, b.bind.abort = b.health.downSignal, b.health.downSignal
	return b, nil
}

// Name implements PasswordBackend.
func (b *LDAPBackend) Name() string { return "ldap" }

// Close closes the idle connections. In-flight checks finish normally.
func (b *LDAPBackend) Close() error {
	b.search.closeIdle()
	b.bind.closeIdle()
	return nil
}

// Ping connects and binds the service account, to report a misconfigured or
// unreachable directory at startup. The error wraps ErrUnavailable.
func (b *LDAPBackend) Ping(ctx context.Context) error {
	err := b.search.with(ctx, func(c *ldapConn) error {
		return c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error {
			_, err := l.WhoAmI(nil)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("%w: ldap %s: %v", ErrUnavailable, b.host, err)
	}
	return nil
}

// CheckPassword implements PasswordBackend.
//
// One deadline, the configured Timeout, bounds the whole check: the wait
// for a pool slot, the search and the bind (issue 8 item 15). While the
// directory is known not to answer, checks fail fast (see ldapHealth).
func (b *LDAPBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	// RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an
	// "unauthenticated bind" that many servers answer with success. Refuse
	// it here, before any bind is sent.
	if password == "" {
		return nil, fmt.Errorf("%w: empty password", ErrBadCredentials)
	}
	if user == "" || len(user) > maxLoginLen {
		return nil, fmt.Errorf("%w: empty or overlong user name", ErrBadCredentials)
	}
	probe, retry, ok := b.health.admit()
	if !ok {
		return nil, fmt.Errorf("%w: ldap %s not answering; next try in %v", ErrUnavailable, b.host, retry.Round(time.Millisecond))
	}
	// A caller that gave up (its session shut down) or a check that
	// panicked says nothing about the directory: the outage, if any, goes
	// on, and the probe slot is free for the next check.
	settled := false
	defer func() {
		if !settled {
			b.health.abandon(probe)
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if probe {
		// The probe must reach the directory: the pools' "directory
		// down" signal is closed for the whole outage.
		cctx = withoutAbort(cctx)
	}
	id, err := b.check(cctx, user, password)
	if ctx.Err() == nil {
		settled = true
		b.health.done(probe, errors.Is(err, errNoAnswer))
	}
	return id, err
}

// check is search-then-bind under ctx's deadline.
func (b *LDAPBackend) check(ctx context.Context, user, password string) (*Identity, error) {
	entry, err := b.find(ctx, user)
	if err != nil {
		return nil, err
	}
	// The entry is the account, whatever spelling found it: ask the
	// throttle about it before its password is tried (issue 8 item 12).
	canonical := ldapCanonical(entry.DN)
	if err := CheckEntry(ctx, canonical); err != nil {
		return nil, err
	}
	err = b.bind.with(ctx, func(c *ldapConn) error {
		return c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error { return l.Bind(entry.DN, password) })
	})
	if err != nil {
		// 49 invalidCredentials: wrong password (RFC 4511 §4.2.2). 53
		// unwillingToPerform is what some servers say for a disabled or
		// locked account: a refusal, not an outage.
		if ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultUnwillingToPerform) {
			return nil, &RefusedEntryError{Canonical: canonical,
				Err: fmt.Errorf("%w: bind as %s refused: %s", ErrBadCredentials, entry.DN, ldapErrText(err))}
		}
		return nil, b.unavailable("user bind", err)
	}
	return &Identity{User: user, Addresses: entryAddresses(entry, b.attrs), Backend: b.Name(), Canonical: canonical}, nil
}

// ldapCanonical is the canonical identity of the entry at dn: "ldap:" and
// the DN in go-ldap's normal form (RFC 4514 string, attribute types and
// values compared without regard to case by every directory for the
// naming attributes in use: uid, cn, ou, dc), lowercased.
func ldapCanonical(dn string) string {
	if d, err := ldap.ParseDN(dn); err == nil {
		dn = d.String()
	}
	return "ldap:" + strings.ToLower(dn)
}

// find returns the one entry the filter matches for user.
func (b *LDAPBackend) find(ctx context.Context, user string) (*ldap.Entry, error) {
	timeLimit := int(b.cfg.Timeout / time.Second)
	req := ldap.NewSearchRequest(b.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, timeLimit, false, b.filterFor(user), b.attrs, nil)
	var res *ldap.SearchResult
	err := b.search.with(ctx, func(c *ldapConn) error {
		return c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error {
			var err error
			res, err = l.Search(req)
			return err
		})
	})
	n := 0
	if res != nil {
		n = len(res.Entries)
	}
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		n = max(n, 2)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		// The base DN does not exist: a configuration error, not a user's.
		return nil, b.unavailable("search", err)
	case err != nil:
		return nil, b.unavailable("search", err)
	}
	if n != 1 {
		b.log.Info("ldap user lookup", "user", user, "found", n)
		return nil, fmt.Errorf("%w: found %d entries for the user", ErrBadCredentials, n)
	}
	return res.Entries[0], nil
}

func (b *LDAPBackend) filterFor(user string) string {
	return strings.ReplaceAll(b.cfg.Filter, "{user}", ldap.EscapeFilter(user))
}

// unavailable wraps err as ErrUnavailable, and as errNoAnswer too when the
// directory did not answer at all.
func (b *LDAPBackend) unavailable(op string, err error) error {
	if noAnswer(err) {
		return fmt.Errorf("%w: ldap %s %s: %w: %s", ErrUnavailable, b.host, op, errNoAnswer, ldapErrText(err))
	}
	return fmt.Errorf("%w: ldap %s %s: %s", ErrUnavailable, b.host, op, ldapErrText(err))
}

// noAnswer reports whether err means that the directory did not answer:
// a network error or a timeout, not an LDAP result code.
func noAnswer(err error) bool {
	var ne net.Error
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || errors.As(err, &ne) || isTimeout(err)
}

// ldapErrText is an error's text without go-ldap's packet dumps.
func ldapErrText(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) {
		if le.Err != nil {
			return fmt.Sprintf("%s (%d): %v", ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode, le.Err)
		}
		return fmt.Sprintf("%s (%d)", ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)
	}
	return err.Error()
}

// entryAddresses collects the values of attrs, in order, without duplicates
// (compared without regard to case).
func entryAddresses(e *ldap.Entry, attrs []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, a := range attrs {
		for _, v := range e.GetEqualFoldAttributeValues(a) {
			v = strings.TrimSpace(v)
			if k := strings.ToLower(v); v != "" && !seen[k] {
				seen[k] = true
				out = append(out, v)
			}
		}
	}
	return out
}
