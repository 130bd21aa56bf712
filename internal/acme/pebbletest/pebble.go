// Package pebbletest runs Let's Encrypt's ACME test server Pebble (the
// Debian package "pebble") on loopback for tests, with validation switched
// off (PEBBLE_VA_ALWAYS_VALID=1) so that nothing leaves 127.0.0.1.
package pebbletest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Pebble is a running Pebble.
type Pebble struct {
	Dir     string // ACME directory URL
	CAFile  string // PEM of Pebble's own HTTPS certificate (trust it for Dir)
	mgmt    string // management API base URL
	client  *http.Client
	logFile string
	cmd     *exec.Cmd
	mu      sync.Mutex
	stopped bool
}

// Require skips the test when pebble is not installed, or fails it when
// EDGERELAY_REQUIRE_CLIENTS=1 (CI), and returns the binary's path.
func Require(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("pebble")
	if err != nil {
		if os.Getenv("EDGERELAY_REQUIRE_CLIENTS") == "1" {
			tb.Fatal("pebble (Let's Encrypt's ACME test server) is not installed (apt-get install pebble) and EDGERELAY_REQUIRE_CLIENTS=1")
		}
		tb.Skip("pebble (Let's Encrypt's ACME test server) is not installed: apt-get install pebble; EDGERELAY_REQUIRE_CLIENTS=1 makes this a failure")
	}
	return p
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs Pebble until the test ends.
func Start(tb testing.TB) *Pebble {
	tb.Helper()
	bin := Require(tb)
	dir := tb.TempDir()
	certPEM, keyPEM := selfSigned(tb)
	p := &Pebble{CAFile: filepath.Join(dir, "cert.pem"), logFile: filepath.Join(dir, "pebble.log")}
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(p.CAFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	listen, mgmt := FreeAddr(tb), FreeAddr(tb)
	_, httpPort, _ := net.SplitHostPort(FreeAddr(tb))
	_, tlsPort, _ := net.SplitHostPort(FreeAddr(tb))
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": p.CAFile, "privateKey": keyFile,
		"httpPort": atoi(httpPort), "tlsPort": atoi(tlsPort),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	logf, err := os.Create(p.logFile)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "-config", confFile)
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Stop)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p.Dir, p.mgmt = "https://"+listen+"/dir", "https://"+mgmt
	for i := 0; ; i++ {
		resp, err := p.client.Get(p.Dir)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i == 200 {
			tb.Fatalf("pebble did not come up: %v\n%s", err, p.Log())
		}
		time.Sleep(25 * time.Millisecond)
	}
	return p
}

// Stop stops Pebble (once).
func (p *Pebble) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// Roots is the pool of Pebble's issuing root (fetched from the management
// API): what its certificates chain to.
func (p *Pebble) Roots(tb testing.TB) *x509.CertPool {
	tb.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		tb.Fatalf("pebble /roots/0: no PEM: %q", b)
	}
	return pool
}

// Log is Pebble's output so far.
func (p *Pebble) Log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// Orders counts the new orders Pebble has received (its log has a line
// per request to its newOrder endpoint).
func (p *Pebble) Orders() int { return p.count("POST /order-plz") }

// Issued counts the certificates Pebble has issued.
func (p *Pebble) Issued() int { return p.count("Issued certificate serial") }

func (p *Pebble) count(s string) int {
	f, err := os.Open(p.logFile)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func selfSigned(tb testing.TB) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pebble test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}
