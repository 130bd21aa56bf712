package sqs

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/edgerelay/edgerelay/internal/s3util"
)

// bodyKey is the S3 key of a message body: <prefix><id>.eml.
func (q *Queue) bodyKey(id string) string { return q.o.Prefix + id + ".eml" }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// putBody streams body to the object key and returns its size. The upload
// manager sends a small body in one PutObject and a large one as a
// multipart upload of PartSize parts, so at most about three parts are in
// memory; a failed multipart upload is aborted.
func (q *Queue) putBody(ctx context.Context, key string, body io.Reader) (int64, error) {
	cr := &countingReader{r: body}
	in := &s3.PutObjectInput{
		Bucket:      aws.String(q.o.Bucket),
		Key:         aws.String(key),
		Body:        cr,
		ContentType: aws.String("message/rfc822"),
	}
	q.setSSE(in)
	if _, err := q.uploader.Upload(ctx, in); err != nil {
		return cr.n, fmt.Errorf("store body in s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	return cr.n, nil
}

// putBodyIfAbsent writes the body object only if no object has the key
// (If-None-Match: *), and returns the size of the object that is there
// afterwards: the body just written, or the one another Enqueue of the same
// ID wrote first, which is kept unchanged.
func (q *Queue) putBodyIfAbsent(ctx context.Context, key string, body io.Reader) (int64, error) {
	cr := &countingReader{r: body}
	in := &s3.PutObjectInput{
		Bucket:      aws.String(q.o.Bucket),
		Key:         aws.String(key),
		Body:        cr,
		ContentType: aws.String("message/rfc822"),
		IfNoneMatch: aws.String("*"),
	}
	q.setSSE(in)
	_, err := q.uploader.Upload(ctx, in)
	if err == nil {
		return cr.n, nil
	}
	if !isPreconditionFailed(err) {
		return cr.n, fmt.Errorf("store body in s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	head, herr := q.o.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key)})
	if herr != nil {
		return 0, fmt.Errorf("body s3://%s/%s exists but cannot be read: %w", q.o.Bucket, key, herr)
	}
	return aws.ToInt64(head.ContentLength), nil
}

// isPreconditionFailed reports whether a conditional write found the key
// taken (412 PreconditionFailed; 409 ConditionalRequestConflict when
// another conditional write to the key is in progress).
func isPreconditionFailed(err error) bool {
	switch apiCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	s := httpStatus(err)
	return s == http.StatusPreconditionFailed || s == http.StatusConflict
}

func (q *Queue) setSSE(in *s3.PutObjectInput) {
	if q.o.SSE == SSENone {
		return
	}
	in.ServerSideEncryption = s3types.ServerSideEncryption(q.o.SSE)
	if q.o.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(q.o.KMSKeyID)
	}
}

// openBody opens a body object for reading.
func (q *Queue) openBody(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := q.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key)},
		// Multipart objects have no whole-object checksum to validate; the
		// SDK would log that on every read.
		func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	if err != nil {
		if s3util.IsNotFound(err) {
			return nil, fmt.Errorf("queue: body s3://%s/%s is gone (message completed elsewhere?): %w", q.o.Bucket, key, err)
		}
		return nil, fmt.Errorf("queue: read body s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	return out.Body, nil
}

// bodyExists reports whether the body object exists. An error means S3
// did not say either way. A HEAD response has no error body, so a 404 for
// a missing bucket looks like one for a missing key: a 404 is confirmed
// with HeadBucket before the key is taken to be gone, lest a deleted or
// mistyped bucket make every message look completed.
func (q *Queue) bodyExists(ctx context.Context, key string) (bool, error) {
	_, err := q.o.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	if !s3util.IsNotFound(err) {
		return false, err
	}
	if _, berr := q.o.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(q.o.Bucket)}); berr != nil {
		return false, fmt.Errorf("bucket %s: %w", q.o.Bucket, berr)
	}
	return false, nil
}

// deleteBody removes a body object; a missing object is not an error.
func (q *Queue) deleteBody(ctx context.Context, key string) error {
	_, err := q.o.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key)})
	if err != nil && !s3util.IsNotFound(err) {
		return fmt.Errorf("delete s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	return nil
}

var _ manager.UploadAPIClient = (*s3.Client)(nil)
