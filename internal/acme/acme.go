// Package acme obtains and renews the submission listeners' certificate
// by ACME (RFC 8555) with github.com/caddyserver/certmagic, and serves it.
//
// Invariants:
//   - Start never waits for the ACME server: it loads what the storage
//     holds and orders or renews in the background, retrying with
//     certmagic's back-off (1 min, 2 min, … up to a day).
//   - GetCertificate always answers: the managed certificate once one is
//     in place, the fallback (a self-signed certificate) before that, and a
//     renewed certificate from the first handshake after it was stored. A
//     session in progress keeps the certificate it shook hands with.
//   - A failed renewal leaves the current certificate in service until it
//     expires; every failure is logged at WARN and counted.
//   - Nothing here logs a private key or the account key.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// Challenge names (RELAY_ACME_CHALLENGE).
const (
	TLSALPN01 = "tls-alpn-01"
	HTTP01    = "http-01"
)

// Options configure a Manager.
type Options struct {
	Domains   []string       // names on the certificate; the first is the default for clients without SNI
	Email     string         // account contact; may be empty
	Directory string         // ACME directory URL
	Roots     *x509.CertPool // trust for the ACME server; nil = the system roots
	Challenge string         // TLSALPN01 or HTTP01
	// ListenHost and Port: the challenge listener's address (Listen).
	ListenHost string
	Port       int
	// DNS01 solves dns-01 (Challenge DNS01; no listener then).
	DNS01   acmez.Solver
	Storage certmagic.Storage
	Logger  *slog.Logger
	// Fallback is served before the first certificate is in place.
	Fallback *tls.Certificate

	// RenewalWindowRatio: renew when this fraction of the lifetime is left
	// (certmagic's default, 1/3, when 0: renewal at two thirds). The ACME
	// server's renewal information (ARI) takes precedence where offered.
	RenewalWindowRatio float64
	// RenewCheckInterval: how often the background maintenance looks
	// (certmagic's default, 10 min, when 0).
	RenewCheckInterval time.Duration
}

// Manager obtains, renews and serves the certificate.
type Manager struct {
	opts  Options
	cache *certmagic.Cache
	magic *certmagic.Config
	log   *slog.Logger

	failures atomic.Int64 // orders and renewals that failed
	mu       sync.Mutex
	lastErr  string // the last failure, for /readyz
	cancel   context.CancelFunc

	issuer      *certmagic.ACMEIssuer
	challengeLn net.Listener // Listen's
	stopOnce    sync.Once
}

// New builds a Manager; nothing is contacted until Start.
func New(o Options) (*Manager, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("no domain names")
	}
	switch {
	case o.Challenge == DNS01 && o.DNS01 == nil:
		return nil, errors.New("dns-01 without a solver")
	case o.Challenge != TLSALPN01 && o.Challenge != HTTP01 && o.Challenge != DNS01:
		return nil, fmt.Errorf("challenge %q: want %s, %s or %s", o.Challenge, TLSALPN01, HTTP01, DNS01)
	}
	if o.Storage == nil {
		return nil, errors.New("no storage")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: o, log: o.Logger}
	zl := newZapLogger(o.Logger)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		OCSPCheckInterval:  24 * time.Hour,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		RenewalWindowRatio: o.RenewalWindowRatio,
		DefaultServerName:  o.Domains[0],
		OnEvent:            m.onEvent,
		// Let's Encrypt ended OCSP in 2025; nothing to staple or fetch.
		OCSP:    certmagic.OCSPConfig{DisableStapling: true},
		Storage: o.Storage,
		Logger:  zl,
	})
	iss := certmagic.ACMEIssuer{
		CA:                      o.Directory,
		TestCA:                  o.Directory, // no fallback to another CA
		Email:                   o.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    o.Challenge != HTTP01,
		DisableTLSALPNChallenge: o.Challenge != TLSALPN01,
		ListenHost:              o.ListenHost,
		TrustedRoots:            o.Roots,
		Logger:                  zl,
	}
	switch o.Challenge {
	case HTTP01:
		iss.AltHTTPPort = o.Port
	case TLSALPN01:
		iss.AltTLSALPNPort = o.Port
	case DNS01:
		iss.DNS01Solver = o.DNS01
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, iss)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// Start loads the certificate the storage holds (no order when it is
// current) and obtains or renews in the background until ctx ends or Stop.
// It returns without waiting for the ACME server or the storage (both are
// read in the background; a failure is logged); the error is always nil.
func (m *Manager) Start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(ctx)
	for _, d := range m.opts.Domains {
		// In the background: reading the storage (S3) must not hold up
		// the start either.
		go func() {
			if !m.waitStorage(ctx, d) {
				return
			}
			if m.unusable(ctx, d) != nil {
				m.replaceUnusable(ctx, d)
				return
			}
			if err := m.magic.ManageAsync(ctx, []string{d}); err != nil {
				m.log.Warn("ACME: managing the certificate", "domain", d, "err", err)
			}
		}()
	}
	return nil
}

// waitStorage waits until name's stored certificate can be read or is
// known to be absent, retrying with back-off (1 s doubling to 1 min), each
// failure logged at WARN and counted: certmagic gives a name up for good
// when its first read of the storage fails with anything else (S3
// unreachable for a moment while a front end starts). False when ctx ends.
func (m *Manager) waitStorage(ctx context.Context, name string) bool {
	wait := time.Second
	for {
		_, err := m.opts.Storage.Load(ctx, m.storedKeys(name)[0])
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		m.failures.Add(1)
		m.mu.Lock()
		m.lastErr = "reading the certificate storage: " + err.Error()
		m.mu.Unlock()
		m.log.Warn("ACME: the certificate storage cannot be read; retrying", "domain", name, "retry_in", wait.String(), "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// storedKeys are the storage keys of name's certificate, key and metadata.
func (m *Manager) storedKeys(name string) []string {
	iss := m.issuer.IssuerKey()
	nk := (&certmagic.CertificateResource{SANs: []string{name}}).NamesKey()
	return []string{certmagic.StorageKeys.SiteCert(iss, nk), certmagic.StorageKeys.SitePrivateKey(iss, nk), certmagic.StorageKeys.SiteMeta(iss, nk)}
}

// unusable says why the stored certificate of name cannot be served when
// it is all there: a key that does not match the certificate (a crash
// between certmagic's writes of a renewed key and of its certificate,
// which are not one transaction), a certificate or key that does not
// parse, metadata that is not JSON. nil when it can, or is not all there,
// or the storage cannot be read (certmagic's own load decides then).
// certmagic's start stops managing a name for good on such a certificate
// (logged once, nothing retried, the self-signed certificate served and
// /readyz 503 for ever).
func (m *Manager) unusable(ctx context.Context, name string) error {
	var vals [3][]byte
	for i, k := range m.storedKeys(name) {
		b, err := m.opts.Storage.Load(ctx, k)
		if err != nil {
			return nil
		}
		vals[i] = b
	}
	if _, err := tls.X509KeyPair(vals[0], vals[1]); err != nil {
		return err
	}
	if !json.Valid(vals[2]) {
		return errors.New("its metadata is not JSON")
	}
	return nil
}

// replaceUnusable removes name's unusable stored certificate and has a
// new one ordered. It holds certmagic's issuance lock of the name while it
// looks again and removes, so that a front end that is storing a renewed
// certificate (key first) is not mistaken for a torn write. The failure
// is logged at WARN and counted.
func (m *Manager) replaceUnusable(ctx context.Context, name string) {
	lock := "issue_cert_" + name // certmagic's lock for obtaining and renewing name
	if err := m.opts.Storage.Lock(ctx, lock); err != nil {
		m.log.Warn("ACME: locking to remove an unusable stored certificate", "domain", name, "err", err)
		return
	}
	if err := m.unusable(ctx, name); err != nil {
		m.failures.Add(1)
		m.mu.Lock()
		m.lastErr = "stored certificate unusable (" + err.Error() + "); ordering a new one"
		m.mu.Unlock()
		m.log.Warn("ACME: the stored certificate cannot be served; it is removed and a new one ordered", "domain", name, "err", err.Error())
		for _, k := range m.storedKeys(name) {
			if err := m.opts.Storage.Delete(ctx, k); err != nil {
				m.log.Warn("ACME: removing the unusable stored certificate", "key", k, "err", err)
			}
		}
	}
	if err := m.opts.Storage.Unlock(ctx, lock); err != nil {
		m.log.Warn("ACME: unlocking after removing an unusable stored certificate", "domain", name, "err", err)
	}
	if err := m.magic.ManageAsync(ctx, []string{name}); err != nil {
		m.log.Warn("ACME: managing the certificate", "domain", name, "err", err)
	}
}

// Stop ends the background work and closes the challenge listener
// (once; later calls do nothing).
func (m *Manager) Stop() { m.stopOnce.Do(m.stop) }

func (m *Manager) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.cache.Stop()
	if m.challengeLn != nil {
		m.challengeLn.Close()
	}
}

// GetCertificate is tls.Config.GetCertificate: the managed certificate,
// or the fallback before there is one.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if name := m.name(hello); len(m.cache.AllMatchingCertificates(name)) > 0 {
		// Asked for by the configured name it falls back to: a client
		// that connected by an address or another name gets it too.
		h := *hello
		h.ServerName = name
		c, err := m.magic.GetCertificate(&h)
		if err == nil && c != nil {
			return c, nil
		}
	}
	if m.opts.Fallback != nil {
		return m.opts.Fallback, nil
	}
	return nil, fmt.Errorf("acme: no certificate for %q yet", hello.ServerName)
}

// name is the configured name a handshake asks for: its SNI when that is
// one of ours, else a wildcard of ours that covers it, else the first (a client without SNI, or one that
// connected by another name or an address, gets that certificate).
func (m *Manager) name(hello *tls.ClientHelloInfo) string {
	sni := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	wild := ""
	if i := strings.IndexByte(sni, '.'); i > 0 {
		wild = "*" + sni[i:] // a wildcard of ours covering it (dns-01): certmagic keeps it as a certificate of its own
	}
	for _, want := range []string{sni, wild} {
		for _, d := range m.opts.Domains {
			if want != "" && d == want {
				return d
			}
		}
	}
	return m.opts.Domains[0]
}

// TLSConfig returns the server configuration for the SMTP listeners: TLS
// 1.2 or newer with GetCertificate.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.GetCertificate}
}

// Ready is nil once every configured name has a certificate; before, it
// names the missing ones and the last failure.
func (m *Manager) Ready(context.Context) error {
	var missing []string
	for _, d := range m.opts.Domains {
		if len(m.cache.AllMatchingCertificates(d)) == 0 {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := "no ACME certificate yet for " + strings.Join(missing, ", ") + " (ordering from " + m.opts.Directory + ")"
	m.mu.Lock()
	if m.lastErr != "" {
		msg += "; last attempt: " + m.lastErr
	}
	m.mu.Unlock()
	return errors.New(msg)
}

// NotAfter is the earliest expiry among the configured names' current
// certificates (each name's newest); false before there is one for each.
func (m *Manager) NotAfter() (time.Time, bool) {
	var earliest time.Time
	for _, d := range m.opts.Domains {
		var newest time.Time
		for _, c := range m.cache.AllMatchingCertificates(d) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(newest) {
				newest = c.Leaf.NotAfter
			}
		}
		if newest.IsZero() {
			return time.Time{}, false
		}
		if earliest.IsZero() || newest.Before(earliest) {
			earliest = newest
		}
	}
	return earliest, true
}

// Failures counts orders and renewals that failed (each attempt).
func (m *Manager) Failures() int64 { return m.failures.Load() }

// onEvent is certmagic's event hook: WARN and count on a failure, INFO on
// success. The data logged are names, times and the error text, never
// key material (certmagic's event data hold paths and the CSR only).
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_failed":
		m.failures.Add(1)
		errText := fmt.Sprint(data["error"])
		m.mu.Lock()
		m.lastErr = errText
		m.mu.Unlock()
		args := []any{"domain", data["identifier"], "renewal", data["renewal"], "err", errText}
		if left, ok := data["remaining"].(time.Duration); ok {
			args = append(args, "current_certificate_expires_in", left.Round(time.Second).String())
		}
		m.log.Warn("ACME: obtaining the certificate failed; retrying with back-off, the current certificate stays in service", args...)
	case "cert_obtained":
		m.mu.Lock()
		m.lastErr = ""
		m.mu.Unlock()
		m.log.Info("ACME: certificate obtained", "domain", data["identifier"], "renewal", data["renewal"], "issuer", data["issuer"])
	case "cached_managed_cert":
		m.log.Info("ACME: certificate in service", "names", data["sans"])
	}
	return nil
}
