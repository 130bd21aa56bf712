package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/edgerelay/edgerelay/internal/admin"
	"github.com/edgerelay/edgerelay/queue"
)

// queueIsSQS reports whether the environment configures the SQS + S3
// queue: edgerelay queue then works on the queue itself (README "Queue
// commands with SQS + S3": the S3 copies and marks), from any container
// or shell with the queue's configuration, no running process needed.
func queueIsSQS() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv("RELAY_QUEUE")), string(QueueSQS))
}

// sqsCall runs req on the SQS + S3 queue that the environment configures,
// through the same operations as the socket (admin.Server.Do). The whole
// configuration is loaded and checked as at start, so that the commands
// see the queue the processes see; nothing is served or received.
func sqsCall(ctx context.Context, req admin.Request, body io.Writer, stderr io.Writer) (*admin.Response, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, fmt.Errorf("configuration error:\n%s", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	qp, err := openSQS(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer qp.close()
	a, ok := qp.q.(queue.Admin)
	if !ok {
		return nil, fmt.Errorf("the SQS + S3 queue has no operator commands in this build")
	}
	req.V = admin.Version
	resp, rc := (&admin.Server{Admin: a, Logger: log}).Do(ctx, &req)
	if rc != nil {
		defer rc.Close()
		if _, err := io.Copy(body, rc); err != nil {
			return nil, fmt.Errorf("reading the message: %w", err)
		}
	}
	return resp, nil
}
