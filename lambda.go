package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/edgerelay/edgerelay/queue/sqs"
)

// The serverless worker (issue 13): the same binary, run by AWS Lambda
// (provided.al2023, the binary as bootstrap, or the container image) and
// fed by the SQS queue through an event source mapping. It delivers only:
// no listener, no HTTP; the front ends stay long-running processes.
// lambda_handler.go holds the handler.

// lambdaRuntime reports whether the process runs as an AWS Lambda function
// (the runtime API the Lambda environment names).
func lambdaRuntime() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }

// lambdaMain runs the delivery worker as a Lambda handler fed by SQS. It
// returns only when the configuration or the start-up check fails (the
// Lambda runtime then reports an init error); lambda.Start never returns.
func lambdaMain(stderr io.Writer) int {
	cfg, err := lambdaConfig()
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay: configuration error:\n%s\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	h, err := newLambdaHandler(context.Background(), cfg, log)
	if err != nil {
		log.Error("edgerelay Lambda worker cannot start", "err", err)
		return 1
	}
	log.Info("edgerelay Lambda worker ready", "version", versionString(), "queue", h.q.String())
	lambda.Start(h.handle)
	return 0
}

// lambdaConfig loads the configuration and refuses what the Lambda
// worker cannot run: it is fed by SQS (RELAY_QUEUE=sqs), only delivers
// (RELAY_ROLE=worker), and keeps reports where they outlive it
// (RELAY_BOUNCE_STORE=s3://…).
func lambdaConfig() (*Config, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	var problems []string
	if cfg.Queue != QueueSQS {
		problems = append(problems, fmt.Sprintf("RELAY_QUEUE: %q: the Lambda worker is fed by an SQS queue; set RELAY_QUEUE=sqs", cfg.Queue))
	}
	if cfg.Role != RoleWorker {
		problems = append(problems, fmt.Sprintf("RELAY_ROLE: %q: the Lambda worker only delivers; set RELAY_ROLE=worker (front ends run as long-lived processes)", cfg.Role))
	}
	if !strings.HasPrefix(cfg.BounceStore, "s3://") {
		problems = append(problems, fmt.Sprintf("RELAY_BOUNCE_STORE: %q: a Lambda function's disk is gone after the invocation; set RELAY_BOUNCE_STORE=s3://bucket/prefix", cfg.BounceStore))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, nil
}

// newLambdaHandler opens the queue (with its start-up check) and builds
// the worker whose single-message path the handler runs.
func newLambdaHandler(ctx context.Context, cfg *Config, log *slog.Logger) (*lambdaHandler, error) {
	qp, err := openQueue(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	q, ok := qp.q.(*sqs.Queue)
	if !ok {
		qp.close()
		return nil, fmt.Errorf("RELAY_QUEUE: the Lambda worker needs the SQS queue")
	}
	tr := &endTracker{Queue: q}
	wp := *qp
	wp.q = tr
	w, _, err := newWorker(cfg, &wp, log, newMetrics())
	if err != nil {
		qp.close()
		return nil, err
	}
	return &lambdaHandler{
		q: q, w: w, track: tr, log: log.With("part", "lambda"),
		parallel: cfg.DeliveryConcurrency, reserve: lambdaReserve, minStart: lambdaMinStart,
	}, nil
}

// Time kept at the end of an invocation: deliveries stop lambdaReserve
// before the deadline (the message is then given back, due at once; an
// attempt that ended just before is recorded within it: outbound's
// finishGrace, 5 s, must not exceed it), and
// a record is not started with less than lambdaReserve+lambdaMinStart
// left (it is reported failed and comes back after the visibility
// timeout).
const (
	lambdaReserve  = 5 * time.Second
	lambdaMinStart = 10 * time.Second
)
