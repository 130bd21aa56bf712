package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"sync/atomic"
	"time"
)

var readFile = os.ReadFile

func selfSignedForTest(t interface {
	Fatal(...any)
	Helper()
}) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"smtp.acme.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var nameSeq atomic.Int64

// uniqueName is a certificate name of its own for a test that renews:
// certmagic keeps its renewal back-off per name for the whole process, so
// one test's failed renewals would delay another's.
func uniqueName() string {
	return fmt.Sprintf("r%d.acme.test", nameSeq.Add(1))
}
