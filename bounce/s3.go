package bounce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/edgerelay/edgerelay/internal/s3util"
	"github.com/edgerelay/edgerelay/queue"
)

// s3MarkerText is the body of the marker object <prefix>.edgerelay-bounce-store.
const s3MarkerText = "This S3 prefix is the dedicated bounce store of edgerelay: it holds the\n" +
	"delivery status notifications that edgerelay writes (<key>.eml), and nothing\n" +
	"else. edgerelay refuses to adopt a prefix that holds objects it did not write.\n"

// S3Client is the part of *s3.Client that S3Store uses.
type S3Client interface {
	manager.UploadAPIClient
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// S3Store is a Store in an S3 bucket and key prefix: each
// report is the object <prefix><key>.eml (message/rfc822), written once.
// The prefix is dedicated to it: the marker object
// <prefix>.edgerelay-bounce-store records that.
type S3Store struct {
	client   S3Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" (the whole bucket) or ending in "/"
}

var _ Store = (*S3Store)(nil)

// NewS3 opens the bounce store s3://bucket/prefix. prefix may
// be given with or without a trailing slash; empty means the whole bucket.
// queueBucket and queuePrefix are where the SQS + S3 queue keeps its bodies
// (empty when the queue is not in S3). It refuses:
//   - a location that is the queue's bucket and prefix, lies inside it or
//     contains it (the bounce store is never the queue's own location);
//   - a prefix without the marker object that holds objects edgerelay did
//     not write (anything but <key>.eml report objects).
//
// A prefix that is empty, or holds only reports, is adopted: the marker
// object is written (a conditional write, so concurrent starts agree). The
// client needs s3:ListBucket on the bucket for the prefix, s3:GetObject and
// s3:PutObject on the prefix (docs/aws.md).
func NewS3(ctx context.Context, client S3Client, bucket, prefix, queueBucket, queuePrefix string) (*S3Store, error) {
	p := strings.Trim(prefix, "/")
	if p != "" {
		p += "/"
	}
	st := &S3Store{client: client, bucket: bucket, prefix: p}
	fail := func(format string, args ...any) (*S3Store, error) {
		return nil, fmt.Errorf("bounce store %s: %s", st, fmt.Sprintf(format, args...))
	}
	if bucket == "" {
		return fail("no bucket")
	}
	if client == nil {
		return fail("no S3 client")
	}
	if queueBucket != "" && bucket == queueBucket {
		qp := queuePrefix
		switch {
		case p == qp:
			return fail("is the queue's own location s3://%s/%s; the bounce store must be a dedicated prefix of its own", queueBucket, qp)
		case strings.HasPrefix(p, qp):
			return fail("lies inside the queue's location s3://%s/%s; use a prefix outside it", queueBucket, qp)
		case strings.HasPrefix(qp, p):
			return fail("contains the queue's location s3://%s/%s; the bounce store must hold nothing else", queueBucket, qp)
		}
	}

	marker := p + markerName
	_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(marker)})
	switch {
	case err == nil:
		// Ours already.
	case s3util.IsNotFound(err):
		foreign, err := st.foreignObjects(ctx)
		if err != nil {
			return fail("list the prefix: %v", err)
		}
		if len(foreign) > 0 {
			return fail("holds objects edgerelay did not write (%s) and no marker object %s; the bounce store must be dedicated to edgerelay's reports: use an empty or new prefix", strings.Join(foreign, ", "), marker)
		}
		_, err = client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(marker),
			Body: strings.NewReader(s3MarkerText), ContentType: aws.String("text/plain; charset=utf-8"),
			IfNoneMatch: aws.String("*"),
		})
		if err != nil && !isS3PreconditionFailed(err) {
			return fail("write the marker object %s: %v", marker, err)
		}
	default:
		return fail("read the marker object %s: %v", marker, err)
	}
	st.uploader = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = s3util.DefaultPartSize
		u.Concurrency = 2
	})
	return st, nil
}

// foreignObjects lists (up to 5) keys under the prefix that are neither
// the marker nor report objects.
func (st *S3Store) foreignObjects(ctx context.Context) ([]string, error) {
	var foreign []string
	pages := s3.NewListObjectsV2Paginator(st.client, &s3.ListObjectsV2Input{Bucket: aws.String(st.bucket), Prefix: aws.String(st.prefix)})
	for pages.HasMorePages() && len(foreign) < 5 {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); !st.ours(k) {
				foreign = append(foreign, k)
				if len(foreign) == 5 {
					break
				}
			}
		}
	}
	return foreign, nil
}

// ours reports whether key is one edgerelay writes under the prefix.
func (st *S3Store) ours(key string) bool {
	rest, ok := strings.CutPrefix(key, st.prefix)
	if !ok {
		return false
	}
	if rest == markerName {
		return true
	}
	name, ok := strings.CutSuffix(rest, ".eml")
	return ok && queue.ValidID(name)
}

// Put stores msg as <prefix><key>.eml unless that object exists: a HEAD
// first (so a retry does not upload a large report again), then a
// conditional write (If-None-Match: *) so that two concurrent writers
// store it once. Large reports are uploaded in parts, never held whole.
func (st *S3Store) Put(ctx context.Context, key string, msg io.Reader) error {
	if !queue.ValidID(key) {
		return fmt.Errorf("bounce store %s: invalid report key %q", st, key)
	}
	obj := st.prefix + key + ".eml"
	_, err := st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(st.bucket), Key: aws.String(obj)})
	switch {
	case err == nil:
		return nil
	case !s3util.IsNotFound(err):
		return fmt.Errorf("bounce store %s: check %s: %w", st, obj, err)
	}
	_, err = st.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: aws.String(st.bucket), Key: aws.String(obj),
		Body: msg, ContentType: aws.String("message/rfc822"),
		IfNoneMatch: aws.String("*"),
	})
	if err != nil && !isS3PreconditionFailed(err) {
		return fmt.Errorf("bounce store %s: store %s: %w", st, obj, err)
	}
	return nil
}

// String names the store for logs: "s3://bucket/prefix".
func (st *S3Store) String() string { return "s3://" + st.bucket + "/" + st.prefix }

// isS3PreconditionFailed reports whether a conditional write found the
// object already there (412).
func isS3PreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}
