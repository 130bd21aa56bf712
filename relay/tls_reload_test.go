package relay

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a fresh self-signed pair for name to certFile/keyFile and
// stamps both files with mtime, so two writes never share a stamp.
func writePair(t *testing.T, certFile, keyFile, name string, mtime time.Time) {
	t.Helper()
	c, err := SelfSigned(name)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

// TestCertReloadRenewalDuringLoad: a renewal written while the pair is being
// read (after the read, before the stamp) is picked up at the next check.
// With the stamp taken after the read, the new files' stamp was recorded for
// the old certificate and the renewal was never loaded.
func TestCertReloadRenewalDuringLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	base := time.Now().Add(-time.Hour)
	writePair(t, certFile, keyFile, "old.test", base)

	r := &certReloader{certFile: certFile, keyFile: keyFile}
	renewed := false
	r.readPair = func(c, k string) (tls.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(c, k)
		if !renewed {
			// The renewal lands right after this load read the files.
			renewed = true
			writePair(t, certFile, keyFile, "new.test", base.Add(time.Minute))
		}
		return pair, err
	}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	if got := commonName(t, r.cert); got != "old.test" {
		t.Fatalf("first load: %s, want old.test", got)
	}
	r.checked = time.Time{} // the next handshake checks the files again
	c, err := r.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := commonName(t, c); got != "new.test" {
		t.Fatalf("after the renewal: serving %s, want new.test (the renewal written during a load was missed)", got)
	}
}
