package acme

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestAttackS3DownAtStart: S3 unreachable for a moment while a front end
// starts (RELAY_QUEUE=sqs). Start returns at once, the fallback is served,
// the failure is counted, and once S3 answers the certificate is loaded or
// ordered: certmagic gave the name up for good when its first read of the
// storage failed with anything but "not there".
func TestAttackS3DownAtStart(t *testing.T) {
	p := pebbletest.Start(t)
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-down")
	srv.CreateBucket(t, bucket)
	srv.SetDown("s3", true)
	t.Cleanup(func() { srv.SetDown("s3", false) })
	var logs syncBuffer
	fb := selfSignedForTest(t)
	m := testManager(t, p, NewS3Storage(srv.S3(), bucket, "acme/"), &logs, func(o *Options) { o.Fallback = &fb })
	begin := time.Now()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("Start took %v with S3 down", d)
	}
	time.Sleep(1500 * time.Millisecond)
	if c, err := m.GetCertificate(nil2hello()); err != nil || &c.Certificate[0][0] != &fb.Certificate[0][0] {
		t.Fatalf("with S3 down: not the fallback (%v)", err)
	}
	if m.Failures() < 1 {
		t.Errorf("S3 down at start: no failure counted")
	}
	srv.SetDown("s3", false)
	waitCert(t, m, p.Roots(t), nil, 30*time.Second)
}

func nil2hello() *tls.ClientHelloInfo { return &tls.ClientHelloInfo{ServerName: "smtp.acme.test"} }
