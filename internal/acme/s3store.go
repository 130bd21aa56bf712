package acme

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/caddyserver/certmagic"
)

// S3Storage is certmagic's storage in an S3 bucket under a prefix of its
// own, shared by every front end: the account, the certificates and the
// locks. A lock is an object created only if absent (If-None-Match: *)
// holding its owner and expiry; a holder extends it while it works
// (certmagic renews the lease), and a lock past its expiry (its holder
// died) is taken over with a write conditional on its ETag, so that of two
// front ends racing for it one wins.
type S3Storage struct {
	Client *s3.Client
	Bucket string
	Prefix string // e.g. "acme/"; keys are Prefix + certmagic's key
	// LockTTL is how long a lock holds without renewal (2 min when 0).
	LockTTL time.Duration
	// PollInterval: how often a waiting Lock looks again (1 s when 0).
	PollInterval time.Duration
	// SSE and KMSKeyID: server-side encryption of every object written
	// (RELAY_S3_SSE, RELAY_S3_KMS_KEY_ID, as the queue's); none when empty.
	SSE, KMSKeyID string

	owner string

	lockMu sync.Mutex                    // one write of a lock object at a time in this process
	held   map[string]context.CancelFunc // locks held, each kept fresh by a goroutine (keepFresh)
}

var _ certmagic.Storage = (*S3Storage)(nil)
var _ certmagic.LockLeaseRenewer = (*S3Storage)(nil)

// NewS3Storage returns a storage with an owner ID of its own (a random one
// per process, so that one front end never takes another's lock for its
// own).
func NewS3Storage(c *s3.Client, bucket, prefix string) *S3Storage {
	b := make([]byte, 8)
	rand.Read(b)
	return &S3Storage{Client: c, Bucket: bucket, Prefix: prefix, owner: hex.EncodeToString(b)}
}

// put writes an object with the configured server-side encryption.
func (s *S3Storage) put(ctx context.Context, in *s3.PutObjectInput) error {
	in.Bucket = &s.Bucket
	if s.SSE != "" {
		in.ServerSideEncryption = s3types.ServerSideEncryption(s.SSE)
		if s.KMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.KMSKeyID)
		}
	}
	_, err := s.Client.PutObject(ctx, in)
	return err
}

func (s *S3Storage) key(k string) string { return s.Prefix + strings.TrimPrefix(k, "/") }

func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	return false
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict", "412", "409":
			return true
		}
	}
	return false
}

// Store writes value at key.
func (s *S3Storage) Store(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, &s3.PutObjectInput{Key: aws.String(s.key(key)), Body: bytes.NewReader(value)})
}

// Load reads key; fs.ErrNotExist when it is absent.
func (s *S3Storage) Load(ctx context.Context, key string) ([]byte, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
		}
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(io.LimitReader(out.Body, 1<<20))
}

// Delete removes key and everything under key + "/".
func (s *S3Storage) Delete(ctx context.Context, key string) error {
	under, err := s.List(ctx, key, true)
	if err != nil {
		return err
	}
	for _, k := range append(under, key) {
		if _, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: aws.String(s.key(k))}); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// Exists says whether key is an object or has objects under it.
func (s *S3Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys under path: every object with recursive, else the
// objects and "directories" one level down.
func (s *S3Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	prefix := s.key(strings.TrimSuffix(path, "/") + "/")
	in := &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix}
	if !recursive {
		in.Delimiter = aws.String("/")
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), s.Prefix))
		}
		for _, cp := range page.CommonPrefixes {
			keys = append(keys, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), s.Prefix), "/"))
		}
	}
	return keys, nil
}

// Stat describes key: an object, or a "directory" with objects under it.
func (s *S3Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: aws.String(s.key(key))})
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: aws.ToTime(out.LastModified), Size: aws.ToInt64(out.ContentLength), IsTerminal: true}, nil
	}
	if !isNotFound(err) {
		return certmagic.KeyInfo{}, err
	}
	prefix := s.key(strings.TrimSuffix(key, "/") + "/")
	l, err := s.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix, MaxKeys: aws.Int32(1)})
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(l.Contents) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// lockRecord is a lock object's content.
type lockRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

func (s *S3Storage) lockKey(name string) string { return s.key("locks/" + name + ".lock") }

func (s *S3Storage) ttl() time.Duration {
	if s.LockTTL > 0 {
		return s.LockTTL
	}
	return 2 * time.Minute
}

func (s *S3Storage) lockBody(ttl time.Duration) []byte {
	b, _ := json.Marshal(lockRecord{Owner: s.owner, Expires: time.Now().Add(ttl)})
	return b
}

// Lock takes the lock name, waiting while another front end holds it and
// its expiry has not passed, until ctx ends.
func (s *S3Storage) Lock(ctx context.Context, name string) error {
	key := s.lockKey(name)
	poll := s.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	for {
		err := s.put(ctx, &s3.PutObjectInput{Key: &key,
			Body: bytes.NewReader(s.lockBody(s.ttl())), IfNoneMatch: aws.String("*")})
		if err == nil {
			s.keepFresh(name)
			return nil
		}
		if !isPreconditionFailed(err) {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		// Held: take it over if its holder let it expire.
		rec, etag, err := s.readLock(ctx, key)
		switch {
		case err != nil && !isNotFound(err):
			return fmt.Errorf("lock %s: %w", name, err)
		case err == nil && time.Now().After(rec.Expires):
			err := s.put(ctx, &s3.PutObjectInput{Key: &key,
				Body: bytes.NewReader(s.lockBody(s.ttl())), IfMatch: aws.String(etag)})
			if err == nil {
				s.keepFresh(name)
				return nil
			}
			if !isPreconditionFailed(err) && !isNotFound(err) {
				return fmt.Errorf("lock %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (s *S3Storage) readLock(ctx context.Context, key string) (lockRecord, string, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		return lockRecord{}, "", err
	}
	defer out.Body.Close()
	var rec lockRecord
	b, err := io.ReadAll(io.LimitReader(out.Body, 4096))
	if err != nil {
		return lockRecord{}, "", err
	}
	// A record that does not parse has the zero expiry: expired, taken over.
	_ = json.Unmarshal(b, &rec)
	return rec, aws.ToString(out.ETag), nil
}

// RenewLockLease extends a lock this process holds, by lease (at least
// LockTTL, at most maxLease).
func (s *S3Storage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	return s.extend(ctx, name, min(max(lease, s.ttl()), maxLease))
}

// extend rewrites the lock name, if this process holds it, to expire
// lease from now.
func (s *S3Storage) extend(ctx context.Context, name string, lease time.Duration) error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	key := s.lockKey(name)
	rec, etag, err := s.readLock(ctx, key)
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", name, err)
	}
	if rec.Owner != s.owner {
		return fmt.Errorf("renew lock %s: %w", name, errLockLost)
	}
	return s.put(ctx, &s3.PutObjectInput{Key: &key, Body: bytes.NewReader(s.lockBody(lease)), IfMatch: aws.String(etag)})
}

var errLockLost = errors.New("held by another front end")

// keepFresh extends the lock name every third of LockTTL until Unlock,
// so that it expires only when its holder is gone: certmagic renews a
// lease only between attempts, and one attempt (polling the CA for up to
// 5 min per authorization and again for the order, waiting for Route
// 53) can outlast LockTTL, which let a second front end take the lock
// and order too. A lock found taken over is no longer kept.
func (s *S3Storage) keepFresh(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	s.lockMu.Lock()
	if s.held == nil {
		s.held = map[string]context.CancelFunc{}
	}
	if old := s.held[name]; old != nil {
		old()
	}
	s.held[name] = cancel
	s.lockMu.Unlock()
	go func() {
		t := time.NewTicker(s.ttl() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.extend(ctx, name, s.ttl()); errors.Is(err, errLockLost) || isNotFound(err) {
				return
			}
		}
	}()
}

// stopFresh ends keepFresh's goroutine for name.
func (s *S3Storage) stopFresh(name string) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if cancel := s.held[name]; cancel != nil {
		cancel()
		delete(s.held, name)
	}
}

// maxLease bounds a lease: certmagic asks for its next retry interval plus
// the order's timeout (at most about a day), but for 30 days once its
// retries ran past its table, which would leave a dead holder's lock in
// the way of every other front end's renewal for a month.
const maxLease = 25 * time.Hour

// Unlock releases a lock this process holds (another's is left alone).
func (s *S3Storage) Unlock(ctx context.Context, name string) error {
	s.stopFresh(name)
	key := s.lockKey(name)
	rec, etag, err := s.readLock(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	if rec.Owner != s.owner {
		return nil
	}
	_, err = s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: &key, IfMatch: aws.String(etag)})
	if err != nil && !isNotFound(err) && !isPreconditionFailed(err) {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// String names the storage in logs.
func (s *S3Storage) String() string { return "s3://" + s.Bucket + "/" + s.Prefix }
