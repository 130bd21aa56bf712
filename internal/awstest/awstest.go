package awstest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sivchari/kumo"
)

// Region is the region the test clients sign for.
const Region = "us-east-1"

// Server is a handle on the running emulator with clients of its own.
type Server struct {
	// URL is the endpoint, "http://127.0.0.1:port".
	URL string

	mu   sync.Mutex
	down map[string]bool
}

// The emulator's services keep their state in process-wide singletons
// (registered at init), so one process runs one emulator, started on first
// use and left running until the process exits.
var (
	shared     *kumo.Server
	sharedOnce sync.Once
)

// Start returns a handle on the process's emulator, starting it on first
// use. Every handle sees the same queues and buckets: give each test
// names of its own. SetDown affects only the clients of this handle.
// (The emulator must run without KUMO_DATA_DIR, i.e. in memory.)
func Start(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() { shared = kumo.NewServer() })
	return &Server{URL: shared.URL, down: make(map[string]bool)}
}

var nameSeq atomic.Int64

// UniqueName returns prefix-N, a queue or bucket name not used before in
// this process (the emulator's state outlives a test, also across -count).
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nameSeq.Add(1))
}

// ErrDown is the transport error of a request to a service that SetDown
// took down.
var ErrDown = errors.New("awstest: service unreachable (SetDown)")

// SetDown makes the clients built by this Server fail every request to
// service ("sqs", "s3" or "sesv2") with a transport error, as if the endpoint were
// unreachable, until SetDown(service, false).
func (s *Server) SetDown(service string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[service] = down
}

func (s *Server) isDown(service string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down[service]
}

// faultTransport fails requests to services that are SetDown.
type faultTransport struct {
	s    *Server
	base http.RoundTripper
}

func (f faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	service := "s3"
	switch {
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS."):
		service = "sqs"
	case strings.HasPrefix(r.URL.Path, "/v2/email/"):
		service = "sesv2"
	}
	if f.s.isDown(service) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, ErrDown
	}
	return f.base.RoundTrip(r)
}

// Config returns an aws.Config for the emulator: static credentials, the
// test region, one attempt per request (no retries, so that failure tests
// are fast) and an HTTP client of its own.
func (s *Server) Config() aws.Config {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", ""),
		HTTPClient:  &http.Client{Transport: faultTransport{s: s, base: tr}},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })
		},
		BaseEndpoint: aws.String(s.URL),
	}
}

// SQS returns an SQS client for the emulator.
func (s *Server) SQS() *sqs.Client {
	return sqs.NewFromConfig(s.Config())
}

// S3 returns a path-style S3 client for the emulator.
func (s *Server) S3() *s3.Client {
	return s3.NewFromConfig(s.Config(), func(o *s3.Options) { o.UsePathStyle = true })
}

// CreateQueue creates a standard queue with the given attributes
// ("VisibilityTimeout", "RedrivePolicy", …) and returns its URL.
func (s *Server) CreateQueue(tb testing.TB, name string, attrs map[string]string) string {
	tb.Helper()
	out, err := s.SQS().CreateQueue(ctx(tb), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		tb.Fatalf("awstest: CreateQueue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(tb testing.TB, name string) {
	tb.Helper()
	if _, err := s.S3().CreateBucket(ctx(tb), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatalf("awstest: CreateBucket %s: %v", name, err)
	}
}

// Keys lists the keys under prefix in bucket.
func (s *Server) Keys(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.S3(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(tb))
		if err != nil {
			tb.Fatalf("awstest: ListObjectsV2 %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func ctx(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return c
}
