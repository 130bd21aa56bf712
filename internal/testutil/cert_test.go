package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
)

// TestCA: a client that trusts the CA (by Pool or by PEMFile) completes a
// handshake with a server presenting its Leaf, for an IP address and a DNS
// name; a client that trusts another CA, or asks for another name, refuses.
func TestCA(t *testing.T) {
	ca := NewCA(t)
	leaf := ca.Leaf(t, "127.0.0.1", "relay.test")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	fromFile := x509.NewCertPool()
	pemBytes, err := os.ReadFile(ca.PEMFile(t))
	if err != nil || !fromFile.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("PEMFile: %v", err)
	}
	dial := func(pool *x509.CertPool, name string) error {
		c, err := tls.DialWithDialer(&net.Dialer{}, "tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, tc := range []struct {
		what string
		pool *x509.CertPool
		name string
		ok   bool
	}{
		{"Pool, IP", ca.Pool(), "127.0.0.1", true},
		{"Pool, DNS name", ca.Pool(), "relay.test", true},
		{"PEMFile", fromFile, "relay.test", true},
		{"another CA", NewCA(t).Pool(), "relay.test", false},
		{"another name", ca.Pool(), "other.test", false},
	} {
		if err := dial(tc.pool, tc.name); (err == nil) != tc.ok {
			t.Errorf("%s: handshake error %v, want ok=%v", tc.what, err, tc.ok)
		}
	}
}
