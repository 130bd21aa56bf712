package acme

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestAttackS3StorageSSE: with RELAY_S3_SSE (and RELAY_S3_KMS_KEY_ID) the
// ACME objects, the account and certificate keys above all, are written
// with the same server-side encryption as the queue's: a bucket whose
// policy requires it would refuse them otherwise, and the keys would be
// the only objects in the bucket outside the operator's KMS key.
func TestAttackS3StorageSSE(t *testing.T) {
	srv := awstest.Start(t)
	bucket := awstest.UniqueName("acme-sse")
	srv.CreateBucket(t, bucket)
	s := NewS3Storage(srv.S3(), bucket, "acme/")
	s.SSE, s.KMSKeyID = "aws:kms", "alias/edgerelay"
	ctx := context.Background()
	if err := s.Store(ctx, "acme/acct/a.key", []byte("key")); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"acme/acme/acct/a.key", "acme/locks/issue_cert_x.lock"} {
		out, err := srv.S3().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		if out.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != "alias/edgerelay" {
			t.Errorf("%s: SSE %q key %q, want aws:kms alias/edgerelay", k, out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId))
		}
	}
	if err := s.RenewLockLease(ctx, "issue_cert_x", 0); err != nil {
		t.Fatal(err)
	}
	out, _ := srv.S3().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("acme/locks/issue_cert_x.lock")})
	if out == nil || out.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms {
		t.Errorf("a renewed lock lost its SSE")
	}
}
