package acme

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestACMES3StorageBasics: the S3 storage against the emulator with the
// real SDK behaves as certmagic expects (fs.ErrNotExist, listing one level
// or all, Stat of objects and "directories", recursive Delete).
func TestACMES3StorageBasics(t *testing.T) {
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-basics")
	srv.CreateBucket(t, bucket)
	s := NewS3Storage(srv.S3(), bucket, "acme/")
	ctx := context.Background()
	if _, err := s.Load(ctx, "certificates/x/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key = %v, want fs.ErrNotExist", err)
	}
	for _, k := range []string{"certificates/x/a.crt", "certificates/x/a.key", "certificates/y/b.crt", "acme/acct.json"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Load(ctx, "certificates/x/a.key"); err != nil || !bytes.Equal(b, []byte("certificates/x/a.key")) {
		t.Fatalf("Load = %q, %v", b, err)
	}
	top, err := s.List(ctx, "certificates", false)
	slices.Sort(top)
	if err != nil || !slices.Equal(top, []string{"certificates/x", "certificates/y"}) {
		t.Fatalf("List one level = %v, %v", top, err)
	}
	all, _ := s.List(ctx, "certificates", true)
	if len(all) != 3 {
		t.Fatalf("List recursive = %v", all)
	}
	if ki, err := s.Stat(ctx, "certificates/x"); err != nil || ki.IsTerminal {
		t.Fatalf("Stat of a directory = %+v, %v", ki, err)
	}
	if ki, err := s.Stat(ctx, "certificates/x/a.crt"); err != nil || !ki.IsTerminal || ki.Size != int64(len("certificates/x/a.crt")) {
		t.Fatalf("Stat of an object = %+v, %v", ki, err)
	}
	if err := s.Delete(ctx, "certificates/x"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/x/a.crt") || !s.Exists(ctx, "certificates/y/b.crt") {
		t.Fatal("Delete removed the wrong keys")
	}
	if keys := srv.Keys(t, bucket, ""); slices.ContainsFunc(keys, func(k string) bool { return len(k) < 5 || k[:5] != "acme/" }) {
		t.Fatalf("a key outside the prefix: %v", keys)
	}
}

// TestACMES3LockExpiry: one front end holds the lock, another waits; a
// holder that renews keeps it; one that stops renewing (died) loses it
// after the expiry to the waiter, and can then neither renew nor release
// the waiter's lock.
func TestACMES3LockExpiry(t *testing.T) {
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-lock")
	srv.CreateBucket(t, bucket)
	a := NewS3Storage(srv.S3(), bucket, "acme/")
	b := NewS3Storage(srv.S3(), bucket, "acme/")
	for _, s := range []*S3Storage{a, b} {
		s.LockTTL, s.PollInterval = 1500*time.Millisecond, 50*time.Millisecond
	}
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	err := b.Lock(short, "issue_cert_x")
	cancel()
	if err == nil {
		t.Fatal("two front ends hold the lock at once")
	}
	if err := a.RenewLockLease(ctx, "issue_cert_x", 30*24*time.Hour); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	if rec, _, err := a.readLock(ctx, a.lockKey("issue_cert_x")); err != nil || time.Until(rec.Expires) > maxLease {
		t.Fatalf("a 30-day lease was not bounded: %v %v", rec.Expires, err)
	}
	if err := a.RenewLockLease(ctx, "issue_cert_x", 1500*time.Millisecond); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	a.stopFresh("issue_cert_x") // a dies: nothing keeps its lock fresh any more
	start := time.Now()
	if err := b.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the renewed lock was taken after %v", d)
	}
	if err := a.RenewLockLease(ctx, "issue_cert_x", time.Minute); err == nil {
		t.Fatal("the old holder renewed a lock it lost")
	}
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if !b.Exists(ctx, "locks/issue_cert_x.lock") {
		t.Fatal("the old holder's Unlock removed the new holder's lock")
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil || b.Exists(ctx, "locks/issue_cert_x.lock") {
		t.Fatalf("Unlock by the holder: %v", err)
	}
	// Racing for a free lock: exactly one wins each round.
	var wins sync.WaitGroup
	got := make(chan *S3Storage, 2)
	for _, s := range []*S3Storage{a, b} {
		wins.Add(1)
		go func() {
			defer wins.Done()
			c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if s.Lock(c, "race") == nil {
				got <- s
			}
		}()
	}
	wins.Wait()
	if len(got) != 1 {
		t.Fatalf("%d front ends won the race for one lock", len(got))
	}
}

// TestACMES3TwoFrontEndsOrderOnce: two front ends start at once on one S3
// store: one orders, the other waits on the lock and loads what the first
// stored; a third started later (a new container) serves the current
// certificate at once. Pebble sees one order.
func TestACMES3TwoFrontEndsOrderOnce(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-shared")
	srv.CreateBucket(t, bucket)
	var logs syncBuffer
	var ms []*Manager
	for range 2 {
		st := NewS3Storage(srv.S3(), bucket, "acme/")
		st.PollInterval = 50 * time.Millisecond
		ms = append(ms, testManager(t, p, st, &logs, nil))
	}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Start(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		defer m.Stop()
	}
	wg.Wait()
	a := waitCert(t, ms[0], roots, nil, 30*time.Second)
	b := waitCert(t, ms[1], roots, nil, 30*time.Second)
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("the two front ends serve different certificates")
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("pebble saw %d orders from two front ends, want 1", n)
	}
	m3 := testManager(t, p, NewS3Storage(srv.S3(), bucket, "acme/"), &logs, nil)
	start := time.Now()
	if err := m3.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m3.Stop()
	c := waitCert(t, m3, roots, nil, 10*time.Second)
	if !bytes.Equal(c.Raw, a.Raw) || time.Since(start) > 5*time.Second {
		t.Fatalf("a new front end did not start with the current certificate (after %v)", time.Since(start))
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("a new front end ordered again: %d orders", n)
	}
	for _, k := range srv.Keys(t, bucket, "") {
		if len(k) < 5 || k[:5] != "acme/" {
			t.Fatalf("key outside the ACME prefix: %s", k)
		}
	}
}
