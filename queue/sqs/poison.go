package sqs

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Poison messages (issue 8 item 5, the SQS side). A message whose delivery
// kills the worker would be received again after every visibility timeout,
// for the whole queue lifetime. The receives of one SQS message count only
// claims that ended without Reschedule or Complete (each retry is sent as a
// new message) and re-arms of delays over 15 min, which rearms estimates; so
// receives - 1 - rearms is the number of crashed (or abandoned) deliveries
// of this message. Once it reaches MaxDeliveryCrashes the message is set
// aside instead of handed out: its envelope is written to
// <prefix>quarantine/<id>.json (with the body key; the body stays where it
// is, under the lifecycle rule), the SQS message is deleted, and the event
// is logged at ERROR and counted in Stats.CrashQuarantined. If the
// record cannot be written the message is left alone: it is received again
// later, and the dead-letter redrive (maxReceiveCount) remains the backstop.

// Stats are the SQS backend's counters.
type Stats struct {
	// CrashQuarantined counts messages set aside because MaxDeliveryCrashes
	// deliveries of them ended without Reschedule or Complete.
	CrashQuarantined uint64
	// ViewWriteErrors counts failed writes of the operator's copy of an
	// envelope (view.go); delivery is not affected.
	ViewWriteErrors uint64
}

type sqsStats struct {
	crashQuarantined atomic.Uint64
	viewWriteErrors  atomic.Uint64
}

// Stats returns the backend's counters.
func (q *Queue) Stats() Stats {
	return Stats{CrashQuarantined: q.stats.crashQuarantined.Load(), ViewWriteErrors: q.stats.viewWriteErrors.Load()}
}

// crashedReceives is how many earlier receives of a message ended without
// Reschedule or Complete.
func crashedReceives(receives, rearms int) int {
	return max(receives-1-rearms, 0)
}

// quarantineKey is where a message set aside is recorded.
func (q *Queue) quarantineKey(id string) string { return q.o.Prefix + "quarantine/" + id + ".json" }

// setAside quarantines a poison message (see above) and reports whether it
// did; w holds the envelope.
func (q *Queue) setAside(ctx context.Context, w *sqsWire, handle string, crashes int, log *slog.Logger) bool {
	id := w.Envelope.ID
	rec, err := marshalSQS(sqsWire{V: sqsWireVersion, Key: w.Key, Envelope: w.Envelope})
	if err != nil {
		log.Error("sqs queue: poison message could not be recorded for quarantine; left for the dead-letter queue", "crashes", crashes, "err", err)
		return false
	}
	qkey := q.quarantineKey(id)
	in := &s3.PutObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(qkey), Body: bytes.NewReader(rec), ContentType: aws.String("application/json")}
	q.setSSE(in)
	if _, err := q.o.S3.PutObject(ctx, in); err != nil {
		log.Error("sqs queue: poison message could not be written to quarantine; it is received again later (the dead-letter redrive is the backstop)", "crashes", crashes, "quarantine", qkey, "err", err)
		return false
	}
	if _, err := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(handle)}); err != nil {
		log.Error("sqs queue: poison message recorded in quarantine, but its SQS message could not be deleted; it is set aside again at its next receive", "quarantine", qkey, "err", err)
		return false
	}
	q.deleteEnvObject(ctx, w.EnvKey, id)
	q.stats.crashQuarantined.Add(1)
	log.Error("sqs queue: message set aside in quarantine: its deliveries ended without a result too often (the worker died or lost the lease); not retried",
		"crashes", crashes, "max_delivery_crashes", q.o.MaxDeliveryCrashes, "quarantine", "s3://"+q.o.Bucket+"/"+qkey, "body", "s3://"+q.o.Bucket+"/"+w.Key)
	return true
}
