package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgerelay/edgerelay/internal/acme"
)

// validateACME checks the RELAY_ACME_* variables and fills in
// c.acmeDomains. validate calls it after the scan settings.
func (c *Config) validateACME(bad badFunc) {
	c.acmeDomains = nil
	if !c.ACME {
		return
	}
	if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		bad("ACME", "cannot be combined with RELAY_TLS_CERT_FILE/RELAY_TLS_KEY_FILE: choose one source of the certificate")
	}
	if c.Role == RoleWorker {
		bad("ACME", "the certificate is for the submission listeners: RELAY_ROLE all or submission, not worker")
	}
	domains := c.ACMEDomains
	name := "ACME_DOMAINS"
	if strings.TrimSpace(domains) == "" {
		domains, name = c.Hostname, "HOSTNAME"
	}
	for _, d := range strings.Split(domains, ",") {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" {
			continue
		}
		if err := acmeName(d, c.ACMEChallenge == acme.DNS01); err != "" {
			if name == "HOSTNAME" {
				bad("ACME_DOMAINS", "not set, and RELAY_HOSTNAME %q %s: set RELAY_ACME_DOMAINS or RELAY_HOSTNAME to the public name", d, err)
			} else {
				bad(name, "%q %s", d, err)
			}
			continue
		}
		c.acmeDomains = append(c.acmeDomains, d)
	}
	if len(c.acmeDomains) == 0 && name == "ACME_DOMAINS" {
		bad("ACME_DOMAINS", "no name given")
	}
	if c.ACMEEmail != "" && (!strings.Contains(c.ACMEEmail, "@") || strings.ContainsAny(c.ACMEEmail, " \t\r\n<>,")) {
		bad("ACME_EMAIL", "%q is not an e-mail address", c.ACMEEmail)
	}
	if u, err := url.Parse(c.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("ACME_DIRECTORY", "%q: want the https:// URL of the ACME directory", c.ACMEDirectory)
	}
	if c.ACMECAFile != "" {
		if _, err := acmeRoots(c.ACMECAFile); err != nil {
			bad("ACME_CA_FILE", "%v", err)
		}
	}
	switch c.ACMEChallenge {
	case acme.TLSALPN01:
		if _, _, err := acmeListen(c.ACMETLSAddr); err != nil {
			bad("ACME_TLS_ADDR", "%q: %v", c.ACMETLSAddr, err)
		}
	case acme.HTTP01:
		if _, _, err := acmeListen(c.ACMEHTTPAddr); err != nil {
			bad("ACME_HTTP_ADDR", "%q: %v", c.ACMEHTTPAddr, err)
		}
	case acme.DNS01:
		if strings.TrimSpace(c.ACMERoute53ZoneID) == "" {
			bad("ACME_ROUTE53_ZONE_ID", "required with RELAY_ACME_CHALLENGE=dns-01: the hosted zone that holds %s", strings.Join(c.acmeDomains, ", "))
		}
	default:
		bad("ACME_CHALLENGE", "%q: want tls-alpn-01, http-01 or dns-01", c.ACMEChallenge)
	}
	if c.Queue == QueueSQS {
		p := c.ACMES3Prefix
		switch {
		case p == "" || !strings.HasSuffix(p, "/"):
			bad("ACME_S3_PREFIX", "%q: want a prefix ending in /, e.g. acme/", p)
		case strings.HasPrefix(p, c.S3Prefix) || strings.HasPrefix(c.S3Prefix, p):
			bad("ACME_S3_PREFIX", "%q overlaps RELAY_S3_PREFIX %q (the queue's messages): give it its own", p, c.S3Prefix)
		}
	}
	c.validateACMEBounce(bad)
}

// validateACMEBounce refuses a bounce store that overlaps the ACME
// storage (the bounce store must hold nothing but reports, and the
// account and certificate keys nothing but themselves): with
// RELAY_QUEUE=sqs an s3:// one in RELAY_S3_BUCKET whose prefix overlaps
// RELAY_ACME_S3_PREFIX, with the spool a maildir: one overlapping
// $RELAY_DATA_DIR/acme.
func (c *Config) validateACMEBounce(bad badFunc) {
	overlap := func(a, b string) bool { return strings.HasPrefix(a, b) || strings.HasPrefix(b, a) }
	if c.Queue == QueueSQS {
		rest, ok := strings.CutPrefix(c.BounceStore, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if prefix = strings.Trim(prefix, "/"); prefix != "" {
			prefix += "/"
		}
		if ok && bucket == c.S3Bucket && c.ACMES3Prefix != "" && overlap(prefix, c.ACMES3Prefix) {
			bad("BOUNCE_STORE", "%q overlaps the ACME storage s3://%s/%s (RELAY_ACME_S3_PREFIX): the bounce store must hold nothing else; give each a prefix of its own", c.BounceStore, c.S3Bucket, c.ACMES3Prefix)
		}
		return
	}
	dir, ok := strings.CutPrefix(c.BounceStore, "maildir:")
	if !ok || c.DataDir == "" {
		return
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	acmeDir := filepath.Join(c.DataDir, "acme")
	if overlap(abs+string(filepath.Separator), acmeDir+string(filepath.Separator)) {
		bad("BOUNCE_STORE", "%q overlaps the ACME storage %s (RELAY_DATA_DIR/acme): the bounce store must hold nothing else", c.BounceStore, acmeDir)
	}
}

// acmeName says what is wrong with d as a name on a certificate, or "";
// a wildcard only with dns-01 (wildcardOK).
func acmeName(d string, wildcardOK bool) string {
	if wildcardOK {
		d = strings.TrimPrefix(d, "*.")
	}
	switch {
	case strings.HasPrefix(d, "*."):
		return "is a wildcard, which needs dns-01"
	case net.ParseIP(d) != nil:
		return "is an address, not a DNS name"
	case !strings.Contains(d, ".") || len(d) > 253:
		return "is not a fully qualified domain name"
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "is not a valid DNS name"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "is not a valid DNS name (an IDN must be given as its xn-- A-label)"
			}
		}
	}
	return ""
}

// acmeListen splits a challenge listener's address into host and port.
func acmeListen(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return host, n, nil
}

// acmeRoots reads a PEM CA bundle: the system roots plus its certificates.
func acmeRoots(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}
