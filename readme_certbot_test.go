package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/relay"
)

// certbotLineage writes certificate number n of a certbot lineage under
// root as certbot lays it out: archive/NAME/{fullchain,privkey}N.pem (the
// key 0600) and live/NAME/{fullchain,privkey}.pem, relative symlinks to
// them, re-pointed as a renewal does (a new link renamed over the old).
// It returns the certificate's serial number.
func certbotLineage(t *testing.T, ca *testutil.CA, root, name string, n int) *big.Int {
	t.Helper()
	leaf := ca.Leaf(t, name)
	var chain []byte
	for _, der := range leaf.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	key, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	archive, live := filepath.Join(root, "archive", name), filepath.Join(root, "live", name)
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{"fullchain": chain, "privkey": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})}
	for base, data := range files {
		file := filepath.Join(archive, base+itoa(n)+".pem")
		mode := os.FileMode(0o644)
		if base == "privkey" {
			mode = 0o600
		}
		if err := os.WriteFile(file, data, mode); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(live, base+".pem")
		if err := os.Symlink(filepath.Join("..", "..", "archive", name, base+itoa(n)+".pem"), link+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".new", link); err != nil {
			t.Fatal(err)
		}
	}
	x, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.SerialNumber
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// servedSerial makes one TLS handshake with cfg and returns the serial
// number of the certificate it served.
func servedSerial(t *testing.T, cfg *tls.Config) *big.Int {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Server(a, cfg).Handshake()
	c := tls.Client(b, &tls.Config{InsecureSkipVerify: true, ServerName: "smtp.example.org"})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestREADMECertbot (finding 3): a certificate in certbot's layout, where
// live/ holds relative symlinks into archive/.
//   - RELAY_TLS_CERT_FILE in live/ works where the tree is whole, and a
//     renewal that re-points the links is served without a restart;
//   - the links alone, as a bind mount of live/NAME shows them in a
//     container, do not resolve: "no such file or directory";
//   - the README's deploy hook copies the pair out of the links, the key
//     0640 and group 65534, readable by the image's uid 65534 (checked as
//     that user when the test runs as root), and a renewal that runs the
//     hook again is served too.
func TestREADMECertbot(t *testing.T) {
	hook := readmeBlocks(t, "certbot-deploy-hook")["certbot-deploy-hook"]
	const dest = "/srv/edgerelay/tls"
	if !strings.Contains(hook, "dir="+dest+"\n") {
		t.Fatalf("the deploy hook no longer copies to %s:\n%s", dest, hook)
	}
	root := t.TempDir()
	le, tlsDir := filepath.Join(root, "letsencrypt"), filepath.Join(root, "tls")
	ca := testutil.NewCA(t)
	serial1 := certbotLineage(t, ca, le, "smtp.example.org", 1)
	lineage := filepath.Join(le, "live", "smtp.example.org")

	inPlace, _, err := relay.TLSConfig(filepath.Join(lineage, "fullchain.pem"), filepath.Join(lineage, "privkey.pem"), "smtp.example.org")
	if err != nil {
		t.Fatalf("certificate in live/: %v", err)
	}
	if got := servedSerial(t, inPlace); got.Cmp(serial1) != 0 {
		t.Fatalf("served serial %v, want %v", got, serial1)
	}

	// A bind mount of live/NAME alone: the same relative links, without
	// the archive beside them.
	mnt := filepath.Join(root, "mnt", "tls")
	os.MkdirAll(mnt, 0o755)
	for _, f := range []string{"fullchain.pem", "privkey.pem"} {
		target, err := os.Readlink(filepath.Join(lineage, f))
		if err != nil {
			t.Fatal(err)
		}
		os.Symlink(target, filepath.Join(mnt, f))
	}
	if _, _, err := relay.TLSConfig(filepath.Join(mnt, "fullchain.pem"), filepath.Join(mnt, "privkey.pem"), "smtp.example.org"); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("links without archive/: got %v, want no such file or directory", err)
	}

	runHook := func() {
		t.Helper()
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(hook, dest, tlsDir))
		cmd.Env = append(os.Environ(), "RENEWED_LINEAGE="+lineage)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("deploy hook: %v\n%s", err, out)
		}
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the hook's chgrp to 65534 cannot run; only the symlink cases were checked")
		return
	}
	runHook()
	for f, mode := range map[string]os.FileMode{"fullchain.pem": 0o644, "privkey.pem": 0o640} {
		fi, err := os.Lstat(filepath.Join(tlsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want a regular file %v", f, fi.Mode(), mode)
		}
		if f == "privkey.pem" && fi.Sys().(*syscall.Stat_t).Gid != 65534 {
			t.Errorf("%s: group %d, want 65534", f, fi.Sys().(*syscall.Stat_t).Gid)
		}
	}
	// Readable by the image's user, as docker run mounts it (the path to
	// it made traversable as /srv/edgerelay is).
	for d := tlsDir; d != filepath.Dir(filepath.Dir(root)); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cat := exec.Command("cat", filepath.Join(tlsDir, "privkey.pem"), filepath.Join(tlsDir, "fullchain.pem"))
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cat.CombinedOutput(); err != nil {
		t.Fatalf("uid 65534 cannot read the copied pair: %v\n%s", err, out)
	}
	copied, _, err := relay.TLSConfig(filepath.Join(tlsDir, "fullchain.pem"), filepath.Join(tlsDir, "privkey.pem"), "smtp.example.org")
	if err != nil {
		t.Fatalf("the hook's copies: %v", err)
	}
	if got := servedSerial(t, copied); got.Cmp(serial1) != 0 {
		t.Fatalf("copies: served serial %v, want %v", got, serial1)
	}

	// A renewal: certbot writes archive/…2.pem, re-points the links and
	// runs the hook. Both are served after the reloader's next check (it
	// looks at most every 5 s).
	serial2 := certbotLineage(t, ca, le, "smtp.example.org", 2)
	runHook()
	time.Sleep(5200 * time.Millisecond)
	for name, cfg := range map[string]*tls.Config{"live/": inPlace, "the hook's copies": copied} {
		eventually(t, "the renewed certificate from "+name, 15*time.Second, func() bool { return servedSerial(t, cfg).Cmp(serial2) == 0 })
	}
}
