package sqs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edgerelay/edgerelay/internal/s3util"
	"github.com/edgerelay/edgerelay/queue"
)

// SQSAPI is the part of *sqs.Client that Queue uses.
type SQSAPI interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// S3API is the part of *s3.Client that Queue uses: the multipart
// upload calls of the upload manager plus object reads, deletes, the
// bucket check and the operator's listing.
type S3API interface {
	manager.UploadAPIClient
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	// ListObjectsV2 lists the queued messages for the operator (admin.go).
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Defaults and limits of the SQS backend.
const (
	// DefaultS3Prefix is the key prefix of the body objects.
	DefaultS3Prefix = "queue/"
	// DefaultVisibilityTimeout is how long a received message stays
	// invisible before the heartbeat extends it (every third of it), and so
	// at most how long a killed worker's message waits before another
	// worker gets it (issue 8 item 20; docs/aws.md has the measured figure).
	DefaultVisibilityTimeout = 60 * time.Second
	// DefaultWaitTime is the ReceiveMessage long-poll time (the SQS maximum).
	DefaultWaitTime = 20 * time.Second

	// MaxSQSMessageSize is the SQS message body limit the envelope must fit
	// in (256 KiB, the long-standing SQS maximum and the default of the
	// queue attribute MaximumMessageSize).
	MaxSQSMessageSize = 256 << 10
	// maxVisibility is the SQS maximum visibility timeout (12 h), less a
	// margin: a receipt's visibility cannot be extended past 12 h after the
	// receive.
	maxVisibility = 12*time.Hour - time.Minute
	// maxDelay is the SQS maximum DelaySeconds (15 min).
	maxDelay = 15 * time.Minute
	// dueSlack tolerates clock differences between the host that
	// rescheduled a message and the one that receives it.
	dueSlack = 2 * time.Second
)

// S3 server-side encryption modes (Options.SSE).
const (
	SSENone   = ""
	SSEAES256 = string(s3types.ServerSideEncryptionAes256)
	SSEKMS    = string(s3types.ServerSideEncryptionAwsKms)
)

// Options configure Open. SQS, S3, QueueURL and Bucket are required;
// the rest has defaults. main builds the clients from the AWS SDK's standard
// configuration (config.LoadDefaultConfig); tests from package awstest.
type Options struct {
	SQS SQSAPI
	S3  S3API
	// QueueURL is the SQS standard queue.
	QueueURL string
	// Bucket and Prefix locate the body objects, <Prefix><id>.eml
	// (Prefix defaults to "queue/").
	Bucket string
	Prefix string
	// SSE is the server-side encryption of the body objects: "" (the
	// bucket's default), "AES256" or "aws:kms" with KMSKeyID (empty: the
	// AWS managed key).
	SSE      string
	KMSKeyID string
	// VisibilityTimeout of a received message; a heartbeat extends it every
	// third of it while the lease is held. Whole seconds, 1s to 12h.
	VisibilityTimeout time.Duration
	// WaitTime is the ReceiveMessage long poll, whole seconds, 1s to 20s.
	WaitTime time.Duration
	// PartSize is the multipart upload part size, at least 5 MiB. Memory per
	// upload in flight is about three parts.
	PartSize int64
	// BatchSends lets concurrent Enqueue calls share SendMessageBatch
	// requests (up to 10 envelopes collected for at most BatchWindow).
	BatchSends  bool
	BatchWindow time.Duration
	// MaxDeliveryCrashes is how many deliveries of one message may end
	// without Reschedule or Complete (the worker died) before the message
	// is set aside in quarantine instead of handed out again (zero means
	// queue.DefaultMaxDeliveryCrashes).
	MaxDeliveryCrashes int
	// MinRetention is the queue lifetime: Check warns when the queue's
	// MessageRetentionPeriod is shorter. Zero skips that check.
	MinRetention time.Duration
	// Logger receives the backend's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Queue is the SQS + S3 Queue backend. It is safe for concurrent use by
// any number of goroutines and processes.
type Queue struct {
	o        Options
	log      *slog.Logger
	uploader *manager.Uploader
	batch    *sendBatcher // nil unless BatchSends
	stats    sqsStats

	base         context.Context // cancelled by Close
	cancel       context.CancelFunc
	closeOnce    sync.Once
	leases       sync.WaitGroup           // heartbeat goroutines
	views        sync.WaitGroup           // view writes Enqueue did not wait for
	viewMu       sync.Mutex               // guards the views below, and orders Close with a lease's start
	viewsPending map[string]chan struct{} // by message ID (view.go)
	viewsBehind  chan struct{}            // a slot per view write not waited for
	viewsClosed  bool                     // set by Close, under viewMu
}

var _ queue.Queue = (*Queue)(nil)

// Open validates o and returns the queue. It does no I/O: call Check at
// start-up to learn whether the queue and bucket are reachable.
func Open(ctx context.Context, o Options) (*Queue, error) {
	_ = ctx
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	q := &Queue{o: o, log: o.Logger, viewsBehind: make(chan struct{}, maxViewsBehind)}
	q.base, q.cancel = context.WithCancel(context.Background())
	q.uploader = manager.NewUploader(o.S3, func(u *manager.Uploader) {
		u.PartSize = o.PartSize
		u.Concurrency = 2
	})
	if o.BatchSends {
		q.batch = newSendBatcher(q, o.BatchWindow)
	}
	return q, nil
}

func (o *Options) setDefaults() error {
	var errs []error
	if o.SQS == nil {
		errs = append(errs, errors.New("no SQS client"))
	}
	if o.S3 == nil {
		errs = append(errs, errors.New("no S3 client"))
	}
	if o.QueueURL == "" {
		errs = append(errs, errors.New("no queue URL"))
	}
	if o.Bucket == "" {
		errs = append(errs, errors.New("no bucket"))
	}
	if o.Prefix == "" {
		o.Prefix = DefaultS3Prefix
	}
	if strings.HasPrefix(o.Prefix, "/") {
		errs = append(errs, fmt.Errorf("S3 prefix %q must not start with /", o.Prefix))
	}
	switch o.SSE {
	case SSENone, SSEAES256:
		if o.KMSKeyID != "" {
			errs = append(errs, fmt.Errorf("a KMS key ID is set but S3 SSE is %q, not %q", o.SSE, SSEKMS))
		}
	case SSEKMS:
	default:
		errs = append(errs, fmt.Errorf("S3 SSE %q: want %q or %q", o.SSE, SSEAES256, SSEKMS))
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if o.VisibilityTimeout < time.Second || o.VisibilityTimeout > 12*time.Hour {
		errs = append(errs, fmt.Errorf("visibility timeout %v: want 1s to 12h", o.VisibilityTimeout))
	}
	if o.WaitTime == 0 {
		o.WaitTime = DefaultWaitTime
	}
	if o.WaitTime < time.Second || o.WaitTime > 20*time.Second {
		errs = append(errs, fmt.Errorf("receive wait time %v: want 1s to 20s", o.WaitTime))
	}
	if o.PartSize == 0 {
		o.PartSize = s3util.DefaultPartSize
	}
	if o.PartSize < manager.MinUploadPartSize {
		errs = append(errs, fmt.Errorf("part size %d: want at least %d", o.PartSize, manager.MinUploadPartSize))
	}
	if o.MaxDeliveryCrashes == 0 {
		o.MaxDeliveryCrashes = queue.DefaultMaxDeliveryCrashes
	}
	if o.MaxDeliveryCrashes < 0 {
		errs = append(errs, fmt.Errorf("max delivery crashes %d: want at least 1", o.MaxDeliveryCrashes))
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = 2 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqs queue: %w", err)
	}
	return nil
}

// String names the queue for logs: "sqs:<queue URL> s3://bucket/prefix".
func (q *Queue) String() string {
	return "sqs:" + q.o.QueueURL + " s3://" + q.o.Bucket + "/" + q.o.Prefix
}

// Close makes Lease calls in progress and later return ErrClosed and stops
// the lease heartbeats (a message still leased becomes due again when its
// visibility timeout ends). Reschedule and Complete keep working, so that
// deliveries that finish after Close are recorded. It waits for the
// operator's copies Enqueue left running (each bounded by
// viewWriteTimeout); an Enqueue under way waits for its own. Close is
// idempotent.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.viewMu.Lock() // no lease starts its heartbeat past this (accept.go)
		q.cancel()
		q.viewMu.Unlock()
		if q.batch != nil {
			q.batch.close()
		}
		q.leases.Wait()
		q.viewMu.Lock()
		q.viewsClosed = true // later copies are waited for by their Enqueue
		q.viewMu.Unlock()
		q.views.Wait()
	})
	return nil
}

func (q *Queue) closed() bool { return q.base.Err() != nil }

// withClose returns a context that is done when ctx is or when q closes.
func (q *Queue) withClose(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(q.base, cancel)
	return c, func() { stop(); cancel() }
}

// cleanupCtx is for best-effort cleanup after a failure: it outlives a
// cancelled request context, but not for long.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// Body opens the body object of a leased message.
func (q *Queue) Body(ctx context.Context, m *queue.Message) (io.ReadCloser, error) {
	l, err := leaseOf(m)
	if err != nil {
		return nil, err
	}
	return q.openBody(ctx, l.key)
}
