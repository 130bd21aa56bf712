package relay

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// BenchmarkTLSHandshake measures one TLS 1.3 handshake over loopback TCP,
// both ends in this process (so each op is the server's and the client's
// CPU together): the certificate edgerelay makes (ECDSA P-256) against an
// RSA-2048 one, Go's default key exchange (X25519MLKEM768 first) against
// X25519 alone, and a full handshake against a resumed one (session
// ticket). docs/benchmarks.md has the numbers (issue 10).
func BenchmarkTLSHandshake(b *testing.B) {
	ecdsaCert, err := SelfSigned("relay.bench")
	if err != nil {
		b.Fatal(err)
	}
	certs := []struct {
		name string
		cert tls.Certificate
	}{{"ecdsa-p256", ecdsaCert}, {"rsa-2048", rsaCert(b)}}
	kex := []struct {
		name   string
		curves []tls.CurveID // nil: Go's default preference
	}{{"x25519mlkem768", nil}, {"x25519", []tls.CurveID{tls.X25519}}}
	for _, c := range certs {
		for _, k := range kex {
			for _, resume := range []bool{false, true} {
				name := c.name + "/" + k.name + "/full"
				if resume {
					name = c.name + "/" + k.name + "/resumed"
				}
				b.Run(name, func(b *testing.B) {
					srv := &tls.Config{Certificates: []tls.Certificate{c.cert}, MinVersion: tls.VersionTLS12}
					cli := &tls.Config{InsecureSkipVerify: true, CurvePreferences: k.curves, MinVersion: tls.VersionTLS13}
					if resume {
						cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
					}
					benchHandshakes(b, srv, cli, resume)
				})
			}
		}
	}
}

// benchHandshakes runs b.N handshakes against one listener; with resume,
// a first unmeasured handshake fills the client's session cache and every
// measured one must resume.
func benchHandshakes(b *testing.B, srv, cli *tls.Config, resume bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, srv)
				if tc.Handshake() != nil {
					return
				}
				// Read until the client closes: a TLS 1.3 server sends
				// its tickets after the handshake, which the client's
				// read picks up.
				buf := make([]byte, 1)
				tc.Read(buf)
			}()
		}
	}()
	one := func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		tc := tls.Client(c, cli)
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		// One byte each way, so that the client reads the server's
		// session ticket before it closes.
		if _, err := tc.Write([]byte{0}); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		tc.Read(make([]byte, 1))
		return tc.ConnectionState().DidResume
	}
	if resume {
		one()
	}
	b.ResetTimer()
	for range b.N {
		if did := one(); did != resume {
			b.Fatalf("DidResume = %v, want %v", did, resume)
		}
	}
}

// rsaCert makes a self-signed RSA-2048 certificate, the usual commercial
// and ACME default, to compare with edgerelay's ECDSA P-256.
func rsaCert(b *testing.B) tls.Certificate {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"relay.bench"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
