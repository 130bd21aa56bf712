package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// TLSConfig returns the server TLS configuration: TLS 1.2 or newer (RFC
// 8996 retired 1.0 and 1.1), with the certificate from certFile/keyFile,
// re-read when either file changes so a renewed certificate is used without
// a restart. With both files empty it makes a self-signed certificate for
// hostname in memory and reports selfSigned.
func TLSConfig(certFile, keyFile, hostname string) (cfg *tls.Config, selfSigned bool, err error) {
	cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile == "" && keyFile == "" {
		cert, err := SelfSigned(hostname)
		if err != nil {
			return nil, false, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, true, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, false, fmt.Errorf("both the certificate and the key file are needed")
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, false, err
	}
	cfg.GetCertificate = r.get
	return cfg, false, nil
}

// certReloader re-reads the key pair when the files' modification times
// change, checking at most every few seconds.
type certReloader struct {
	certFile, keyFile string
	// readPair reads the key pair (tls.LoadX509KeyPair; a test seam).
	readPair func(certFile, keyFile string) (tls.Certificate, error)

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func (r *certReloader) stampNow() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

// load reads the key pair. The stamp is taken BEFORE the files are read: a
// renewal written during the read then leaves a stamp that differs from
// the files' at the next check, which loads it. (Taken after, the new
// files' stamp would be recorded for the old pair and the renewal missed.)
func (r *certReloader) load() error {
	read := r.readPair
	if read == nil {
		read = tls.LoadX509KeyPair
	}
	stamp := r.stampNow()
	cert, err := read(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp, r.checked = &cert, stamp, time.Now()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > 5*time.Second {
		r.checked = time.Now()
		if r.stampNow() != r.stamp {
			// Keep serving the old pair if the new one is half-written.
			_ = r.load()
		}
	}
	return r.cert, nil
}

// SelfSigned makes an in-memory ECDSA P-256 certificate for hostname,
// valid for a year. For development and first runs only: clients will warn.
func SelfSigned(hostname string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"edgerelay self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
