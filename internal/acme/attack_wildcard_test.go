package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
)

// nopSolver solves dns-01 against a Pebble that validates nothing.
type nopSolver struct{}

func (nopSolver) Present(context.Context, acme.Challenge) error { return nil }
func (nopSolver) CleanUp(context.Context, acme.Challenge) error { return nil }

// TestAttackWildcardServedForItsNames: RELAY_ACME_DOMAINS=acme.test,*.acme.test
// (dns-01): certmagic keeps one certificate per name, so a client that asks
// for smtp.acme.test must get the wildcard's, not the first name's (which
// does not cover it).
func TestAttackWildcardServedForItsNames(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	var logs syncBuffer
	m := testManager(t, p, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.Domains = []string{"acme.test", "*.acme.test"}
		o.Challenge, o.DNS01 = DNS01, nopSolver{}
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for m.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", m.Ready(context.Background()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, sni := range []string{"acme.test", "smtp.acme.test", "SMTP.acme.test."} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		inter := x509.NewCertPool()
		for _, der := range c.Certificate[1:] {
			ic, _ := x509.ParseCertificate(der)
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: sni}); err != nil {
			t.Errorf("SNI %q: served %v: %v", sni, leaf.DNSNames, err)
		}
	}
}
