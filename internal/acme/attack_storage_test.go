package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
)

// TestAttackFileStorageModes: after an order, nothing under the storage
// directory (account key, certificate key, locks) is readable by group or
// others.
func TestAttackFileStorageModes(t *testing.T) {
	p := pebbletest.Start(t)
	dir := filepath.Join(t.TempDir(), "acme")
	var logs syncBuffer
	m := testManager(t, p, &certmagic.FileStorage{Path: dir}, &logs, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCert(t, m, p.Roots(t), nil, 30*time.Second)
	m.Stop()
	keys := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want nothing for group/others", path, fi.Mode().Perm())
		}
		if strings.HasSuffix(path, ".key") {
			keys++
		}
		return nil
	})
	if keys < 2 {
		t.Fatalf("want the account key and the certificate's key in %s, found %d .key files", dir, keys)
	}
}

// TestAttackStoredKeyMismatchAfterCrash: a crash between writing a renewed
// certificate's new private key and the certificate itself (certmagic
// stores the key first, no rename across the three files) leaves the
// old certificate beside a key that does not match it. The next start
// must not be stuck for good on the self-signed certificate with /readyz
// 503 and nothing retried: it orders a new certificate (or at least
// counts the failure).
func TestAttackStoredKeyMismatchAfterCrash(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	dir := t.TempDir()
	st := &certmagic.FileStorage{Path: dir}
	var logs syncBuffer
	m := testManager(t, p, st, &logs, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCert(t, m, roots, nil, 30*time.Second)
	m.Stop()

	// The crash: a new key in place of the certificate's key.
	var keyFile string
	filepath.WalkDir(filepath.Join(dir, "certificates"), func(path string, d fs.DirEntry, err error) error {
		if strings.HasSuffix(path, "smtp.acme.test.key") {
			keyFile = path
		}
		return nil
	})
	if keyFile == "" {
		t.Fatal("no certificate key stored")
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(k)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs2 syncBuffer
	m2 := testManager(t, p, st, &logs2, nil)
	if err := m2.Start(context.Background()); err != nil {
		t.Logf("Start: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m2.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after a restart on a stored certificate whose key does not match: ready=%v failures=%d orders=%d\n%s",
				m2.Ready(context.Background()), m2.Failures(), p.Orders(), logs2.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitCert(t, m2, roots, nil, 5*time.Second)
	if m2.Failures() < 1 {
		t.Fatalf("the unusable stored certificate was not counted as a failure")
	}
	m2.Stop()

	// A torn certificate file (cut inside its first block) is handled the same way.
	certFile := strings.TrimSuffix(keyFile, ".key") + ".crt"
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, b[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	m3 := testManager(t, p, st, &logs2, nil)
	if err := m3.Start(context.Background()); err != nil {
		t.Logf("Start: %v", err)
	}
	waitCert(t, m3, roots, nil, 20*time.Second)
}
