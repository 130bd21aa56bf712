package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestConfigACMEErrors: wrong RELAY_ACME_* settings stop startup with a
// line naming the variable.
func TestConfigACMEErrors(t *testing.T) {
	for _, tt := range []struct {
		vars      map[string]string
		name, msg string
	}{
		{map[string]string{"RELAY_TLS_CERT_FILE": "/c.pem", "RELAY_TLS_KEY_FILE": "/k.pem"}, "RELAY_ACME:", "RELAY_TLS_CERT_FILE"},
		{map[string]string{"RELAY_HOSTNAME": "localhost"}, "RELAY_ACME_DOMAINS:", "RELAY_HOSTNAME"},
		{map[string]string{"RELAY_ACME_DOMAINS": "*.example.org"}, "RELAY_ACME_DOMAINS:", "wildcard"},
		{map[string]string{"RELAY_ACME_DOMAINS": "192.0.2.1"}, "RELAY_ACME_DOMAINS:", "address"},
		{map[string]string{"RELAY_ACME_DIRECTORY": "http://ca.example/dir"}, "RELAY_ACME_DIRECTORY:", "https://"},
		{map[string]string{"RELAY_ACME_CA_FILE": "/nonexistent/ca.pem"}, "RELAY_ACME_CA_FILE:", "no such file"},
		{map[string]string{"RELAY_ACME_CHALLENGE": "dns-01"}, "RELAY_ACME_ROUTE53_ZONE_ID:", "required"},
		{map[string]string{"RELAY_ACME_CHALLENGE": "tls-sni-01"}, "RELAY_ACME_CHALLENGE:", "tls-alpn-01, http-01 or dns-01"},
		{map[string]string{"RELAY_ACME_TLS_ADDR": "443"}, "RELAY_ACME_TLS_ADDR:", "port"},
		{map[string]string{"RELAY_ACME_CHALLENGE": "http-01", "RELAY_ACME_HTTP_ADDR": ":http"}, "RELAY_ACME_HTTP_ADDR:", "port"},
		{map[string]string{"RELAY_ACME_EMAIL": "postmaster"}, "RELAY_ACME_EMAIL:", "e-mail"},
		{map[string]string{"RELAY_QUEUE": "sqs", "RELAY_SQS_QUEUE_URL": "http://127.0.0.1:1/q", "RELAY_S3_BUCKET": "b", "RELAY_ROLE": "worker"}, "RELAY_ACME:", "not worker"},
		{map[string]string{"RELAY_QUEUE": "sqs", "RELAY_SQS_QUEUE_URL": "http://127.0.0.1:1/q", "RELAY_S3_BUCKET": "b", "RELAY_ACME_S3_PREFIX": "queue/acme/"}, "RELAY_ACME_S3_PREFIX:", "overlaps"},
	} {
		t.Run(tt.name+tt.msg, func(t *testing.T) {
			t.Setenv("RELAY_ACME", "true")
			t.Setenv("RELAY_HOSTNAME", "smtp.example.org")
			for k, v := range tt.vars {
				t.Setenv(k, v)
			}
			_, err := loadConfig()
			if err == nil || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v: want %s and %q", err, tt.name, tt.msg)
			}
		})
	}
	t.Setenv("RELAY_ACME", "true")
	t.Setenv("RELAY_HOSTNAME", "smtp.example.org")
	cfg, err := loadConfig()
	if err != nil || len(cfg.acmeDomains) != 1 || cfg.acmeDomains[0] != "smtp.example.org" {
		t.Fatalf("defaults: %v %v", cfg, err)
	}
	t.Setenv("RELAY_ACME_CHALLENGE", "dns-01")
	t.Setenv("RELAY_ACME_ROUTE53_ZONE_ID", "Z0123456789")
	t.Setenv("RELAY_ACME_DOMAINS", "*.example.org,example.org")
	if cfg, err = loadConfig(); err != nil || len(cfg.acmeDomains) != 2 {
		t.Fatalf("dns-01 with a wildcard: %v", err)
	}
}

// acmeServe runs serve until the returned stop is called (or the test ends).
func acmeServe(t *testing.T, vars map[string]string) (stop func()) {
	t.Helper()
	for k, v := range vars {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// acmeVars are the settings of a relay that gets its certificate from p.
func acmeVars(t *testing.T, dir, directory, caFile string) (vars map[string]string, httpAddr, sub, subs string) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, sub, subs = freeAddr(t), freeAddr(t), freeAddr(t)
	return map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": httpAddr, "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": sub, "RELAY_SUBMISSIONS_ADDR": subs,
		"RELAY_AUTH": "file", "RELAY_GATEWAY": "127.0.0.1:1", "RELAY_GATEWAY_TLS": "none",
		"RELAY_ACME": "true", "RELAY_ACME_DOMAINS": "smtp.acme.test", "RELAY_ACME_EMAIL": "postmaster@acme.test",
		"RELAY_ACME_DIRECTORY": directory, "RELAY_ACME_CA_FILE": caFile, "RELAY_ACME_TLS_ADDR": freeAddr(t),
	}, httpAddr, sub, subs
}

// acmeReadyz returns /readyz's status and body.
func acmeReadyz(t *testing.T, httpAddr string) (int, string) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReadyz(t *testing.T, httpAddr string, want int, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := acmeReadyz(t, httpAddr)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %s, want %d", code, body, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// dialSMTP connects to addr (STARTTLS, or implicit TLS), trusting roots
// only, retrying while the listener comes up or the certificate is not
// yet one that verifies.
func dialSMTP(t *testing.T, addr string, implicit bool, roots *x509.CertPool, within time.Duration) (*smtp.Client, *x509.Certificate) {
	t.Helper()
	cfg := &tls.Config{ServerName: "smtp.acme.test", RootCAs: roots, InsecureSkipVerify: roots == nil}
	deadline := time.Now().Add(within)
	for {
		var c *smtp.Client
		var err error
		if implicit {
			c, err = smtp.DialTLS(addr, cfg)
		} else {
			c, err = smtp.DialStartTLS(addr, cfg)
		}
		if err == nil {
			// the handshake runs with the first command after STARTTLS
			if err = c.Noop(); err != nil {
				c.Close()
			}
		}
		if err == nil {
			st, _ := c.TLSConnectionState()
			return c, st.PeerCertificates[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (implicit TLS %v): %v", addr, implicit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gate is a TCP proxy that holds every connection until opened.
type gate struct {
	addr string
	open chan struct{}
}

func startGate(t *testing.T, target string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	g := &gate{addr: ln.Addr().String(), open: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				<-g.open
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	return g
}

// TestACMEServeIssueRenewLive: the relay comes up before the ACME server
// answers (listeners serve the self-signed certificate, /readyz 503
// names the certificate); once Pebble answers, 587 after STARTTLS and 465
// serve a certificate chaining to Pebble's root and /readyz is 200; a
// renewal (the window forced open) reaches new connections while a
// session opened before it completes its transaction.
func TestACMEServeIssueRenewLive(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	u, _ := url.Parse(p.Dir)
	g := startGate(t, u.Host)
	acmeTuning.renewalWindowRatio, acmeTuning.renewCheckInterval = 0.999999999, time.Second
	t.Cleanup(func() { acmeTuning.renewalWindowRatio, acmeTuning.renewCheckInterval = 0, 0 })
	vars, httpAddr, sub, subs := acmeVars(t, t.TempDir(), "https://"+g.addr+"/dir", p.CAFile)
	acmeServe(t, vars)

	// Before the first certificate: up, self-signed, not ready.
	c, leaf := dialSMTP(t, subs, true, nil, 10*time.Second)
	c.Close()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots}); err == nil || leaf.Subject.Organization[0] != "edgerelay self-signed" {
		t.Fatalf("before issuance 465 served %v (verify: %v), want the self-signed fallback", leaf.Subject, err)
	}
	if body := waitReadyz(t, httpAddr, 503, 5*time.Second); !strings.Contains(body, `"certificate"`) || !strings.Contains(body, "smtp.acme.test") {
		t.Fatalf("/readyz before issuance: %s", body)
	}

	close(g.open)
	waitReadyz(t, httpAddr, 200, 30*time.Second)
	c587, first := dialSMTP(t, sub, false, roots, 30*time.Second)
	c465, _ := dialSMTP(t, subs, true, roots, 5*time.Second)
	c465.Close()
	if err := c587.Auth(sasl.NewPlainClient("", "a@example.org", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := c587.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}

	// A renewal reaches new connections on both listeners.
	deadline := time.Now().Add(30 * time.Second)
	for _, l := range []struct {
		addr     string
		implicit bool
	}{{sub, false}, {subs, true}} {
		for {
			c, leaf := dialSMTP(t, l.addr, l.implicit, roots, 5*time.Second)
			c.Close()
			if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves the first certificate", l.addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The session opened before the renewal finishes its transaction.
	if err := c587.Rcpt("b@example.net", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c587.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: a@example.org\r\nTo: b@example.net\r\nSubject: across a renewal\r\n\r\nHello.\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("message over the session opened before the renewal: %v", err)
	}
	if st, _ := c587.TLSConnectionState(); st.PeerCertificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the session's certificate changed")
	}
	c587.Quit()

	fams := scrape(t, httpAddr)
	checkREADMEListsMetrics(t, fams)
	exp := fams["edgerelay_certificate_expiry_timestamp_seconds"]
	if exp == nil || exp.Metric[0].GetGauge().GetValue() < float64(time.Now().Add(24*time.Hour).Unix()) {
		t.Fatalf("expiry gauge: %v", exp)
	}
}

// TestACMEServeServerDownThenRestart: with nothing at the ACME directory
// the relay starts, serves the self-signed certificate, says why it is
// not ready and counts the failure; against Pebble it gets a certificate,
// and a restart on the same RELAY_DATA_DIR serves it at once without a
// new order.
func TestACMEServeServerDownThenRestart(t *testing.T) {
	dir := t.TempDir()
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	vars, httpAddr, _, subs := acmeVars(t, dir, "https://"+freeAddr(t)+"/dir", p.CAFile)
	stop := acmeServe(t, vars)
	c, leaf := dialSMTP(t, subs, true, nil, 10*time.Second)
	c.Close()
	if leaf.Subject.Organization[0] != "edgerelay self-signed" {
		t.Fatalf("ACME server down: 465 served %v", leaf.Subject)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		f := scrape(t, httpAddr)["edgerelay_acme_failures_total"]
		if f != nil && f.Metric[0].GetCounter().GetValue() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ACME failure counted with the server down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body := waitReadyz(t, httpAddr, 503, time.Second); !strings.Contains(body, "certificate") || !strings.Contains(body, "last attempt") {
		t.Fatalf("/readyz: %s", body)
	}
	stop()

	vars, httpAddr, _, subs = acmeVars(t, dir, p.Dir, p.CAFile)
	stop = acmeServe(t, vars)
	waitReadyz(t, httpAddr, 200, 30*time.Second)
	c, issued := dialSMTP(t, subs, true, roots, 5*time.Second)
	c.Close()
	stop()
	orders := p.Orders()

	vars, httpAddr, _, subs = acmeVars(t, dir, p.Dir, p.CAFile)
	acmeServe(t, vars)
	waitReadyz(t, httpAddr, 200, 5*time.Second)
	c, again := dialSMTP(t, subs, true, roots, 5*time.Second)
	c.Close()
	if again.SerialNumber.Cmp(issued.SerialNumber) != 0 {
		t.Fatal("after a restart another certificate is served")
	}
	if n := p.Orders(); n != orders || n != 1 {
		t.Fatalf("orders: %d before the restart, %d after; want 1", orders, n)
	}
}

// TestACMEServeSQSTwoFrontEnds: two front ends with RELAY_QUEUE=sqs (the
// emulator, through the real AWS SDK) start at once on one bucket: Pebble
// sees one order, both serve the same certificate on 465, everything of
// ACME is under RELAY_ACME_S3_PREFIX, and a third front end started later
// is ready with it at once.
func TestACMEServeSQSTwoFrontEnds(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	srv := awstest.Start(t)
	name := awstest.UniqueName("acme-fe")
	queueURL := srv.CreateQueue(t, name, nil)
	srv.CreateBucket(t, name)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CA_BUNDLE", "") // plain HTTP to the emulator; no dependence on the environment's bundle
	acmeTuning.lockPoll = 50 * time.Millisecond
	t.Cleanup(func() { acmeTuning.lockPoll = 0 })
	frontEnd := func() (httpAddr, subs string) {
		vars, httpAddr, _, subs := acmeVars(t, t.TempDir(), p.Dir, p.CAFile)
		vars["RELAY_ROLE"], vars["RELAY_QUEUE"] = "submission", "sqs"
		vars["RELAY_SQS_QUEUE_URL"], vars["RELAY_S3_BUCKET"] = queueURL, name
		acmeServe(t, vars)
		return httpAddr, subs
	}
	h1, s1 := frontEnd()
	h2, s2 := frontEnd()
	waitReadyz(t, h1, 200, 30*time.Second)
	waitReadyz(t, h2, 200, 30*time.Second)
	c, a := dialSMTP(t, s1, true, roots, 5*time.Second)
	c.Close()
	c, b := dialSMTP(t, s2, true, roots, 5*time.Second)
	c.Close()
	if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Fatal("two front ends serve different certificates")
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("Pebble saw %d orders from two front ends on one bucket, want 1", n)
	}
	h3, s3 := frontEnd()
	waitReadyz(t, h3, 200, 5*time.Second)
	c, third := dialSMTP(t, s3, true, roots, 5*time.Second)
	c.Close()
	if third.SerialNumber.Cmp(a.SerialNumber) != 0 || p.Orders() != 1 {
		t.Fatalf("a new front end: another certificate or order (%d orders)", p.Orders())
	}
	var acmeKeys int
	for _, k := range srv.Keys(t, name, "") {
		if strings.HasPrefix(k, "acme/") {
			acmeKeys++
		}
	}
	if acmeKeys == 0 || len(srv.Keys(t, name, "acme/locks/")) != 0 {
		t.Fatalf("S3 keys: %v (want the ACME ones under acme/, no lock left)", srv.Keys(t, name, ""))
	}
}

// TestACMEServeChallengeAddrTaken: a challenge address that cannot be
// bound stops start-up with an error naming the variable.
func TestACMEServeChallengeAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	vars, _, _, _ := acmeVars(t, t.TempDir(), "https://127.0.0.1:1/dir", "")
	vars["RELAY_ACME_TLS_ADDR"] = ln.Addr().String()
	delete(vars, "RELAY_ACME_CA_FILE")
	for k, v := range vars {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "RELAY_ACME_TLS_ADDR") {
		t.Fatalf("serve = %v, want an error naming RELAY_ACME_TLS_ADDR", err)
	}
}

// TestACMEServeDNS01Route53: a relay with RELAY_ACME_CHALLENGE=dns-01
// (the emulator's Route 53 through the real AWS SDK, Pebble) opens no
// challenge port, gets its certificate, and leaves no TXT record behind.
func TestACMEServeDNS01Route53(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	srv := awstest.Start(t)
	client := route53.NewFromConfig(srv.Config())
	zone, err := client.CreateHostedZone(context.Background(), &route53.CreateHostedZoneInput{
		Name: aws.String("acme.test."), CallerReference: aws.String(awstest.UniqueName("acme-serve-zone"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", awstest.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CA_BUNDLE", "")
	acmeTuning.route53Poll = 50 * time.Millisecond
	t.Cleanup(func() { acmeTuning.route53Poll = 0 })
	vars, httpAddr, _, subs := acmeVars(t, t.TempDir(), p.Dir, p.CAFile)
	vars["RELAY_ACME_CHALLENGE"], vars["RELAY_ACME_ROUTE53_ZONE_ID"] = "dns-01", aws.ToString(zone.HostedZone.Id)
	tlsAddr := vars["RELAY_ACME_TLS_ADDR"]
	acmeServe(t, vars)
	waitReadyz(t, httpAddr, 200, 30*time.Second)
	c, _ := dialSMTP(t, subs, true, roots, 5*time.Second)
	c.Close()
	if c, err := net.DialTimeout("tcp", tlsAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("dns-01 opened the tls-alpn-01 listener")
	}
	out, err := client.ListResourceRecordSets(context.Background(), &route53.ListResourceRecordSetsInput{HostedZoneId: zone.HostedZone.Id})
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range out.ResourceRecordSets {
		if strings.HasPrefix(aws.ToString(rr.Name), "_acme-challenge") {
			t.Fatalf("record left behind: %s", aws.ToString(rr.Name))
		}
	}
}
