package sqs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/edgerelay/edgerelay/queue"
)

// Errors that Check wraps, so that callers can tell what is missing.
var (
	ErrNoCredentials  = errors.New("no usable AWS credentials")
	ErrBadCredentials = errors.New("AWS rejected the credentials")
	ErrNoSuchQueue    = errors.New("no such SQS queue")
	ErrNoSuchBucket   = errors.New("no such S3 bucket")
	ErrAccessDenied   = errors.New("access denied")
)

// Check verifies at start-up that the queue and the bucket are usable with
// the configured credentials, and says what is missing instead of failing
// on the first message: no credentials, credentials rejected, no such
// queue, no such bucket, access denied (naming the missing permission). It
// reads the queue's attributes, then writes, reads and deletes a small
// probe object under the prefix with the configured encryption, and checks
// that a missing key answers 404 (which needs s3:ListBucket; without it S3
// answers 403 and completed copies could not be told from errors).
// Configuration that works but is unwise (no dead-letter queue, a short
// retention) is logged as a warning.
func (q *Queue) Check(ctx context.Context) error {
	if err := q.checkQueue(ctx); err != nil {
		return fmt.Errorf("sqs queue: %s: %w", q.o.QueueURL, err)
	}
	if err := q.checkBucket(ctx); err != nil {
		return fmt.Errorf("sqs queue: s3://%s/%s: %w", q.o.Bucket, q.o.Prefix, err)
	}
	return nil
}

func (q *Queue) checkQueue(ctx context.Context) error {
	out, err := q.o.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.o.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameMessageRetentionPeriod,
			sqstypes.QueueAttributeNameRedrivePolicy,
			sqstypes.QueueAttributeNameMaximumMessageSize,
			sqstypes.QueueAttributeNameFifoQueue,
		},
	})
	if err != nil {
		var dne *sqstypes.QueueDoesNotExist
		if errors.As(err, &dne) || apiCode(err) == "AWS.SimpleQueueService.NonExistentQueue" {
			return fmt.Errorf("%w: %w", ErrNoSuchQueue, err)
		}
		return classifyAWS(err, "sqs:GetQueueAttributes")
	}
	a := out.Attributes
	if a[string(sqstypes.QueueAttributeNameFifoQueue)] == "true" {
		return errors.New("a FIFO queue: edgerelay needs a standard queue (FIFO caps DelaySeconds per queue and blocks message groups)")
	}
	if a[string(sqstypes.QueueAttributeNameRedrivePolicy)] == "" {
		q.log.Warn("sqs queue: the queue has no dead-letter queue (RedrivePolicy); unreadable messages are received again until the retention period ends", "queue", q.o.QueueURL)
	}
	if n, err := strconv.Atoi(a[string(sqstypes.QueueAttributeNameMaximumMessageSize)]); err == nil && n < MaxSQSMessageSize {
		q.log.Warn("sqs queue: MaximumMessageSize is below 256 KiB; envelopes with many recipients will be refused", "queue", q.o.QueueURL, "maximum_message_size", n)
	}
	if s, err := strconv.Atoi(a[string(sqstypes.QueueAttributeNameMessageRetentionPeriod)]); err == nil {
		ret := time.Duration(s) * time.Second
		if q.o.MinRetention > 0 && ret < q.o.MinRetention {
			q.log.Warn("sqs queue: MessageRetentionPeriod is shorter than the queue lifetime; SQS would drop messages still being retried", "queue", q.o.QueueURL, "retention", ret, "lifetime", q.o.MinRetention)
		}
	}
	return nil
}

func (q *Queue) checkBucket(ctx context.Context) error {
	if _, err := q.o.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(q.o.Bucket)}); err != nil {
		switch httpStatus(err) {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNoSuchBucket, err)
		case http.StatusMovedPermanently:
			return fmt.Errorf("the bucket is in another region than AWS_REGION: %w", err)
		case http.StatusForbidden:
			return fmt.Errorf("%w: s3:ListBucket on the bucket is needed: %w", ErrAccessDenied, err)
		}
		return classifyAWS(err, "s3:ListBucket")
	}
	key := q.o.Prefix + ".edgerelay-check-" + queue.NewID()
	probe := "edgerelay start-up check; safe to delete\n"
	// The probe is written as report bodies are, only if absent
	// (If-None-Match: *), so a store without conditional writes is found
	// at start, not when the first report is queued.
	in := &s3.PutObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key), Body: strings.NewReader(probe), IfNoneMatch: aws.String("*")}
	q.setSSE(in)
	if _, err := q.o.S3.PutObject(ctx, in); err != nil {
		if apiCode(err) == "NotImplemented" || httpStatus(err) == http.StatusNotImplemented {
			return fmt.Errorf("the S3 store does not support conditional writes (If-None-Match: *), which the queue needs: %w", err)
		}
		return classifyAWS(err, "s3:PutObject on the prefix"+kmsHint(q.o.SSE, "kms:GenerateDataKey"))
	}
	defer func() {
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		q.deleteBody(cctx, key)
	}()
	rc, err := q.openBody(ctx, key)
	if err != nil {
		return classifyAWS(err, "s3:GetObject on the prefix"+kmsHint(q.o.SSE, "kms:Decrypt"))
	}
	got, err := io.ReadAll(io.LimitReader(rc, 1<<10))
	rc.Close()
	if err != nil || string(got) != probe {
		return fmt.Errorf("the probe object %s read back wrong (%d bytes): %v", key, len(got), err)
	}
	if err := q.deleteBody(ctx, key); err != nil {
		return classifyAWS(err, "s3:DeleteObject on the prefix")
	}
	if exists, err := q.bodyExists(ctx, key); err != nil {
		if httpStatus(err) == http.StatusForbidden {
			return fmt.Errorf("%w: a missing key answers 403, not 404: grant s3:ListBucket on the bucket: %w", ErrAccessDenied, err)
		}
		return err
	} else if exists {
		return fmt.Errorf("the probe object %s is still there after DeleteObject", key)
	}
	return nil
}

func kmsHint(sse, action string) string {
	if sse == SSEKMS {
		return " and " + action + " on the KMS key"
	}
	return ""
}

// classifyAWS wraps err in the Check error that says what is wrong.
func classifyAWS(err error, permission string) error {
	code := apiCode(err)
	msg := err.Error()
	switch {
	case strings.Contains(msg, "get identity") || strings.Contains(msg, "retrieve credentials"):
		return fmt.Errorf("%w (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role): %w", ErrNoCredentials, err)
	case code == "InvalidClientTokenId" || code == "UnrecognizedClientException" || code == "SignatureDoesNotMatch" ||
		code == "InvalidAccessKeyId" || code == "ExpiredToken" || code == "InvalidToken" || code == "AuthFailure":
		return fmt.Errorf("%w: %w", ErrBadCredentials, err)
	case strings.Contains(code, "AccessDenied") || code == "KMS.AccessDeniedException" || httpStatus(err) == http.StatusForbidden:
		return fmt.Errorf("%w: %s is needed: %w", ErrAccessDenied, permission, err)
	}
	return err
}

// apiCode is the AWS error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of the response that produced err, or 0.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
