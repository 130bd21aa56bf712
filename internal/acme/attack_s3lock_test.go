package acme

import (
	"context"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestAttackS3LockHeldPastTTL: a front end that holds the lock longer
// than LockTTL in one go (certmagic renews the lease only between
// attempts, and one attempt can poll the CA for minutes) keeps it: another
// front end may not take it over while the holder lives. Once released it
// is taken at once; a holder that dies (stops keeping it fresh) loses it
// after LockTTL.
func TestAttackS3LockHeldPastTTL(t *testing.T) {
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-hold")
	srv.CreateBucket(t, bucket)
	a := NewS3Storage(srv.S3(), bucket, "acme/")
	b := NewS3Storage(srv.S3(), bucket, "acme/")
	for _, s := range []*S3Storage{a, b} {
		s.LockTTL, s.PollInterval = 600*time.Millisecond, 20*time.Millisecond
	}
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_y"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := b.Lock(short, "issue_cert_y")
	cancel()
	if err == nil {
		t.Fatal("a second front end took the lock while its holder was still working (held past LockTTL)")
	}
	if err := a.Unlock(ctx, "issue_cert_y"); err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := b.Lock(short, "issue_cert_y"); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	// b dies: its lock is not kept fresh any more, and a takes it over.
	b.stopFresh("issue_cert_y")
	start := time.Now()
	if err := a.Lock(ctx, "issue_cert_y"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a dead holder's lock taken over after %v", d)
	}
	a.Unlock(ctx, "issue_cert_y")
}
