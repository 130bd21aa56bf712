// Command awsemu runs the SQS + S3 emulator of package awstest as a
// standalone process, for end-to-end tests of the built binary:
//
//	go run ./internal/awstest/awsemu -addr 127.0.0.1:4566 -queue relay -dlq relay-dlq -bucket relay
//
// then point edgerelay at it with AWS_ENDPOINT_URL=http://127.0.0.1:4566,
// AWS_REGION=us-east-1 and any static AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. It prints "queue NAME URL" for every queue it
// created and then "ready http://ADDR" on standard output. SIGINT or SIGTERM
// stops it. Test support only: the state is in memory and lost on exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sivchari/kumo"
)

type options struct {
	queues, buckets []string
	dlq             string
	maxReceive      int
	visibility      int
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4566", "listen address")
	queues := flag.String("queue", "", "comma-separated standard queues to create")
	dlq := flag.String("dlq", "", "a dead-letter queue to create and attach to every -queue")
	maxReceive := flag.Int("max-receive", 10, "maxReceiveCount of the redrive policy (with -dlq)")
	visibility := flag.Int("visibility", 300, "VisibilityTimeout of the created queues, in seconds")
	buckets := flag.String("bucket", "", "comma-separated buckets to create")
	flag.Parse()
	o := options{queues: split(*queues), buckets: split(*buckets), dlq: *dlq, maxReceive: *maxReceive, visibility: *visibility}
	if err := run(*addr, o); err != nil {
		log.Fatalf("awsemu: %v", err)
	}
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(addr string, o options) error {
	k := kumo.NewServer()
	defer k.Close()
	target, err := url.Parse(k.URL)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	endpoint := "http://" + ln.Addr().String()
	if err := setup(endpoint, o); err != nil {
		srv.Close()
		return err
	}
	fmt.Println("ready", endpoint)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return srv.Close()
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// setup creates the queues and buckets through the public endpoint.
func setup(endpoint string, o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "awsemu", ""),
		HTTPClient:   &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		BaseEndpoint: aws.String(endpoint),
	}
	q := sqs.NewFromConfig(cfg)
	attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(o.visibility), "MessageRetentionPeriod": "1209600"}
	if o.dlq != "" {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(o.dlq), Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}})
		if err != nil {
			return fmt.Errorf("create queue %s: %w", o.dlq, err)
		}
		fmt.Println("queue", o.dlq, publicURL(endpoint, aws.ToString(out.QueueUrl)))
		arn := "arn:aws:sqs:us-east-1:000000000000:" + o.dlq
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, arn, o.maxReceive)
	}
	for _, name := range o.queues {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return fmt.Errorf("create queue %s: %w", name, err)
		}
		fmt.Println("queue", name, publicURL(endpoint, aws.ToString(out.QueueUrl)))
	}
	s := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, name := range o.buckets {
		if _, err := s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// publicURL rewrites the emulator's queue URL to the listening endpoint
// (the emulator matches queue URLs by path).
func publicURL(endpoint, queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return queueURL
	}
	return endpoint + u.Path
}
