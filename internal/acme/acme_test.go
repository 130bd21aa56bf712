package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testManager(t *testing.T, p *pebbletest.Pebble, st certmagic.Storage, logs *syncBuffer, tune func(*Options)) *Manager {
	t.Helper()
	pool := x509.NewCertPool()
	if p != nil {
		pool = caPool(t, p.CAFile)
	}
	_, port, _ := net.SplitHostPort(pebbletest.FreeAddr(t))
	dir := "https://127.0.0.1:1/dir"
	if p != nil {
		dir = p.Dir
	}
	o := Options{
		Domains: []string{"smtp.acme.test"}, Email: "postmaster@acme.test", Directory: dir, Roots: pool,
		Challenge: TLSALPN01, ListenHost: "127.0.0.1", Port: atoiT(t, port), Storage: st,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tune != nil {
		tune(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// waitCert waits until the manager serves a certificate chaining to roots.
func waitCert(t *testing.T, m *Manager, roots *x509.CertPool, not []byte, within time.Duration) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: m.opts.Domains[0]})
		if err == nil && len(c.Certificate) > 0 && !bytes.Equal(c.Certificate[0], not) {
			leaf, _ := x509.ParseCertificate(c.Certificate[0])
			inter := x509.NewCertPool()
			for _, der := range c.Certificate[1:] {
				ic, _ := x509.ParseCertificate(der)
				inter.AddCert(ic)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: m.opts.Domains[0]}); err == nil {
				return leaf
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate chaining to Pebble's root within %v (ready: %v)", within, m.Ready(context.Background()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestACMEObtainRestartNoNewOrder: a Manager with file storage orders a
// certificate from Pebble in the background (Ready names the name until
// then), a second Manager on the same storage (a restart) serves it
// without ordering again, and no log line holds key material.
func TestACMEObtainRestartNoNewOrder(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	st := &certmagic.FileStorage{Path: t.TempDir()}
	var logs syncBuffer
	m := testManager(t, p, st, &logs, nil)
	if err := m.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "smtp.acme.test") {
		t.Fatalf("Ready before start = %v, want an error naming the domain", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	leaf := waitCert(t, m, roots, nil, 30*time.Second)
	if err := m.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after issuance: %v", err)
	}
	for _, sni := range []string{"", "other.example", "127.0.0.1"} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil || !bytes.Equal(c.Certificate[0], leaf.Raw) {
			t.Fatalf("SNI %q: not the managed certificate (%v)", sni, err)
		}
	}
	if na, ok := m.NotAfter(); !ok || !na.Equal(leaf.NotAfter) {
		t.Fatalf("NotAfter = %v %v, want %v", na, ok, leaf.NotAfter)
	}
	m.Stop()
	orders := p.Orders()
	if orders != 1 {
		t.Fatalf("pebble saw %d orders, want 1\n%s", orders, p.Log())
	}

	m2 := testManager(t, p, st, &logs, nil)
	if err := m2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m2.Stop()
	leaf2 := waitCert(t, m2, roots, nil, 10*time.Second)
	if !bytes.Equal(leaf2.Raw, leaf.Raw) {
		t.Fatal("after a restart the stored certificate was not the one served")
	}
	time.Sleep(500 * time.Millisecond)
	if n := p.Orders(); n != orders {
		t.Fatalf("a restart on the same storage ordered again: %d orders", n)
	}
	if s := logs.String(); strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "BEGIN") {
		t.Fatalf("key material in the log:\n%s", s)
	}
}

func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := readFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

func atoiT(t *testing.T, s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// TestACMERenewalSwapsLive: with the renewal window forced open (every
// certificate due at once, checked every second), the maintenance renews
// and the next handshake gets the renewed certificate, which chains to
// Pebble's root too.
func TestACMERenewalSwapsLive(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	var logs syncBuffer
	m := testManager(t, p, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.RenewalWindowRatio = 0.999999999 // due 0.16 s after issuance (Pebble 2.4 issues for 5 years)
		o.RenewCheckInterval = time.Second
		o.Domains = []string{uniqueName()}
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	first := waitCert(t, m, roots, nil, 30*time.Second)
	second := waitCert(t, m, roots, first.Raw, 30*time.Second)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewed certificate has the old serial")
	}
	if !strings.Contains(logs.String(), "renewal=true") {
		t.Fatalf("no renewal logged:\n%s", logs.String())
	}
}

// TestACMEServerDownAtStart: with nothing listening at the directory,
// Start returns at once, the fallback is served, Ready names the domain
// and the failure, and the failure is counted and logged at WARN.
func TestACMEServerDownAtStart(t *testing.T) {
	fallback := selfSignedForTest(t)
	var logs syncBuffer
	m := testManager(t, nil, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.Directory = "https://" + pebbletest.FreeAddr(t) + "/dir"
		o.Fallback = &fallback
	})
	start := time.Now()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Start took %v with the ACME server down", d)
	}
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "smtp.acme.test"})
	if err != nil || c != &fallback {
		t.Fatalf("GetCertificate = %v, %v; want the fallback", c, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m.Failures() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failure counted\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = m.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "smtp.acme.test") || !strings.Contains(err.Error(), "last attempt") {
		t.Fatalf("Ready = %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"ACME: obtaining the certificate failed") {
		t.Fatalf("no WARN:\n%s", logs.String())
	}
}

// TestACMEServerHangs: an ACME server that accepts connections and never
// answers does not hold up Start, and the fallback is served meanwhile.
func TestACMEServerHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	fallback := selfSignedForTest(t)
	var logs syncBuffer
	m := testManager(t, nil, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.Directory = "https://" + ln.Addr().String() + "/dir"
		o.Fallback = &fallback
	})
	start := time.Now()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Start took %v with the ACME server hanging", d)
	}
	time.Sleep(300 * time.Millisecond)
	if c, _ := m.GetCertificate(&tls.ClientHelloInfo{}); c != &fallback {
		t.Fatal("fallback not served while the ACME server hangs")
	}
	if err := m.Ready(context.Background()); err == nil {
		t.Fatal("ready without a certificate")
	}
	stopped := make(chan struct{})
	go func() { m.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hangs behind the hanging ACME server")
	}
}

// TestACMEServerGoneAfterIssuance: Pebble stops after the first
// certificate; renewal attempts fail (WARN, counted), the process goes on
// and the issued certificate stays in service.
func TestACMEServerGoneAfterIssuance(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	var logs syncBuffer
	m := testManager(t, p, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.RenewalWindowRatio = 0.999999999 // due 0.16 s after issuance (Pebble 2.4 issues for 5 years)
		o.RenewCheckInterval = time.Second
		o.Domains = []string{uniqueName()}
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	first := waitCert(t, m, roots, nil, 30*time.Second)
	p.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for m.Failures() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal failure counted with Pebble stopped\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: m.opts.Domains[0]})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		// a renewal that succeeded before the stop is fine; it must still be Pebble's
		waitCert(t, m, roots, nil, time.Second)
	}
	if err := m.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with a valid certificate and the ACME server down: %v", err)
	}
}

// TestACMEChallengeListener: the challenge listener is up from Listen (a
// second front end on the same address is refused), serves http-01's
// path only, and closes with Stop.
func TestACMEChallengeListener(t *testing.T) {
	var logs syncBuffer
	m := testManager(t, nil, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) { o.Challenge = HTTP01 })
	addr := m.ChallengeAddr().String()
	for _, path := range []string{"/.well-known/acme-challenge/unknown-token", "/", "/metrics"} {
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	m2, err := New(Options{Domains: []string{"smtp.acme.test"}, Directory: "https://127.0.0.1:1/dir", Challenge: HTTP01,
		ListenHost: "127.0.0.1", Port: atoiT(t, port), Storage: &certmagic.FileStorage{Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Listen(); err == nil {
		t.Fatal("a second listener on the same address")
	}
	m.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("challenge listener still open after Stop")
	}
}
