package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// dial opens a connection: TCP, then TLS for ldaps:// or StartTLS, all
// under one deadline.
func (b *LDAPBackend) dial(ctx context.Context) (*ldapConn, error) {
	deadline := opDeadline(ctx, b.cfg.Timeout)
	d := net.Dialer{Deadline: deadline}
	raw, err := d.DialContext(ctx, "tcp", b.host)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	_ = raw.SetDeadline(deadline)
	var conn net.Conn = raw
	if b.ldaps {
		tc := tls.Client(raw, b.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("TLS handshake: %w", err))
		}
		conn = tc
	}
	l := ldap.NewConn(conn, b.ldaps)
	l.Start()
	c := &ldapConn{l: l, raw: raw}
	if b.cfg.StartTLS {
		err := c.do(ctx, b.cfg.Timeout, func(l *ldap.Conn) error { return l.StartTLS(b.tls) })
		if err != nil {
			c.close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// opDeadline is now+timeout, or ctx's deadline if sooner.
func opDeadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// hostPort is u's host:port, with defPort when the URL names none.
func hostPort(u *url.URL, defPort string) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), defPort)
}

// ldapTLSConfig is the TLS configuration for ldaps:// and StartTLS: cfg's
// TLSConfig (cloned) or a new one, ServerName host, at least TLS 1.2, and
// the CAs of cfg.CAFile as the roots when it is set.
func ldapTLSConfig(cfg LDAPConfig, host string) (*tls.Config, error) {
	t := &tls.Config{}
	if cfg.TLSConfig != nil {
		t = cfg.TLSConfig.Clone()
	}
	if t.ServerName == "" {
		t.ServerName = host
	}
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("auth: LDAP CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth: LDAP CA file %s: no PEM certificates", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}
