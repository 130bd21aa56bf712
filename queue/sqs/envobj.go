package sqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/edgerelay/edgerelay/internal/s3util"
	"github.com/edgerelay/edgerelay/queue"
)

// Envelopes too large for an SQS message (issue 8 item 3). SQS holds at most
// 256 KiB per message, and an envelope grows after the first attempt: every
// recipient gains a reply, a remote MTA and times. 700 recipients fit at
// enqueue and did not at Reschedule, so the message was redelivered forever.
// Such envelopes are kept as S3 objects next to the body (see sqsWire), and
// Enqueue checks that the envelope stays storable when every recipient
// holds the largest state the worker records (MaxReplyText,
// MaxRemoteMTA): nothing accepted can become unstorable later.

// errEnvGone: the envelope object a message points to is gone, so the
// message is a stale copy (rescheduled or completed since).
var errEnvGone = errors.New("envelope object gone")

// encode returns the SQS message body for env sent with delay: the
// envelope inline when it fits, else written to a new envelope object,
// whose key is returned ("" for inline).
func (q *Queue) encode(ctx context.Context, env *queue.Envelope, key string, delay int32) (data []byte, envKey string, err error) {
	data, err = encodeWire(env, key, delay)
	if !errors.Is(err, ErrEnvelopeTooLarge) {
		return data, "", err
	}
	obj, err := encodeEnvelopeObject(env)
	if err != nil {
		return nil, "", err
	}
	envKey = envKeyPrefix(key) + queue.NewID() + ".json"
	in := &s3.PutObjectInput{
		Bucket: aws.String(q.o.Bucket), Key: aws.String(envKey),
		Body: bytes.NewReader(obj), ContentType: aws.String("application/json"),
	}
	q.setSSE(in)
	if _, err := q.o.S3.PutObject(ctx, in); err != nil {
		return nil, "", fmt.Errorf("store envelope in s3://%s/%s: %w", q.o.Bucket, envKey, err)
	}
	data, err = encodePointer(env.ID, key, envKey, delay)
	return data, envKey, err
}

// encodeEnvelopeObject is the content of an envelope object. An envelope
// over maxEnvelopeObject (only possible when replies were recorded longer
// than MaxReplyText) has its replies cut to MaxReplyText bytes of their
// first line rather than become unstorable.
func encodeEnvelopeObject(env *queue.Envelope) ([]byte, error) {
	data, err := marshalSQS(env)
	if err != nil || len(data) <= maxEnvelopeObject {
		return data, err
	}
	short := env.Clone()
	for i := range short.Recipients {
		if r := short.Recipients[i].Reply; r != nil && len(r.Lines) > 0 {
			r.Lines = []string{truncUTF8(r.Lines[0], queue.MaxReplyText)}
		}
		short.Recipients[i].RemoteMTA = truncUTF8(short.Recipients[i].RemoteMTA, queue.MaxRemoteMTA)
	}
	if data, err = marshalSQS(short); err != nil || len(data) <= maxEnvelopeObject {
		return data, err
	}
	return nil, fmt.Errorf("%w: %d bytes with %d recipients, the limit is %d", ErrEnvelopeTooLarge, len(data), len(env.Recipients), maxEnvelopeObject)
}

// truncUTF8 cuts s to at most n bytes on a character boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	return strings.ToValidUTF8(s, "")
}

// worstCaseSize bounds the size env's JSON can reach once every recipient
// holds the largest state the worker records: a reply of MaxReplyText bytes
// and a remote MTA of MaxRemoteMTA bytes, each of characters that JSON
// escapes (6 bytes each), every flag set and every time stamped, a route
// and the operator's mark recorded; the envelope's own fields as
// marshalSQS stores them (U+FFFE, U+FFFF escaped: 6 bytes for 3). The
// recipient's own strings count 6 bytes a byte too: an upper bound, cheap
// enough for every enqueue.
func worstCaseSize(env *queue.Envelope) (int, error) {
	base := *env
	base.Recipients = nil
	base.Size = math.MaxInt64
	base.Attempts = math.MaxInt32
	base.NextAttempt = worstTime
	base.DelayWarned = true
	// Issue 13's fields, set after enqueue: the route (a domain name,
	// counted as characters JSON escapes) and the operator's mark.
	base.Route = strings.Repeat("\x01", maxRouteLen)
	base.Hold = true
	base.Operator = queue.OperatorBounce
	if len(queue.OperatorDelete) > len(base.Operator) {
		base.Operator = queue.OperatorDelete
	}
	data, err := marshalSQS(&base) // as stored: characters SQS refuses are escaped
	if err != nil {
		return 0, err
	}
	size := len(data)
	for _, r := range env.Recipients {
		size += worstRecipient() + 6*(len(r.Addr)+len(r.ORCPT)) + 1
		for _, n := range r.Notify {
			size += 6*len(n) + 3
		}
	}
	return size, nil
}

// maxRouteLen bounds Envelope.Route, a domain name (RFC 1035 §2.3.4: 255
// octets).
const maxRouteLen = 255

// worstTime is the longest time stamp JSON holds.
var worstTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -12*3600))

// worstRecipient is the JSON size of a recipient with empty address, ORCPT
// and NOTIFY and the largest recorded state.
var worstRecipient = sync.OnceValue(func() int {
	r := queue.Recipient{
		Status: queue.StatusDelivered, Attempts: math.MaxInt32, LastAttempt: worstTime,
		Reply:     &queue.Reply{Code: 999, Enhanced: "5.999.999", Lines: []string{strings.Repeat("\x01", queue.MaxReplyText)}},
		RemoteMTA: strings.Repeat("\x01", queue.MaxRemoteMTA), Reported: true, DelayReported: true,
	}
	d, err := json.Marshal(&r)
	if err != nil {
		panic(err)
	}
	return len(d)
})

// checkWorstCase refuses, before anything is stored, an envelope that could
// outgrow an envelope object.
func checkWorstCase(env *queue.Envelope) error {
	n, err := worstCaseSize(env)
	if err != nil {
		return err
	}
	if n > maxEnvelopeObject {
		return fmt.Errorf("%w: %d recipients could need %d bytes of state, the limit is %d", ErrEnvelopeTooLarge, len(env.Recipients), n, maxEnvelopeObject)
	}
	return nil
}

// loadEnvelope reads the envelope object of a pointer message into
// w.Envelope and checks it. errEnvGone: the object does not exist.
func (q *Queue) loadEnvelope(ctx context.Context, w *sqsWire) error {
	out, err := q.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(w.EnvKey)})
	if err != nil {
		if s3util.IsNotFound(err) {
			return fmt.Errorf("%w: s3://%s/%s: %w", errEnvGone, q.o.Bucket, w.EnvKey, err)
		}
		return fmt.Errorf("read envelope s3://%s/%s: %w", q.o.Bucket, w.EnvKey, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxEnvelopeObject+1))
	if err != nil {
		return fmt.Errorf("read envelope s3://%s/%s: %w", q.o.Bucket, w.EnvKey, err)
	}
	if len(data) > maxEnvelopeObject {
		return &badEnvelopeError{fmt.Errorf("envelope object s3://%s/%s is over %d bytes", q.o.Bucket, w.EnvKey, maxEnvelopeObject)}
	}
	var env queue.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return &badEnvelopeError{fmt.Errorf("envelope object s3://%s/%s: %w", q.o.Bucket, w.EnvKey, err)}
	}
	w.Envelope = &env
	if err := checkWireEnvelope(w, q.bodyKey); err != nil {
		w.Envelope = nil
		return &badEnvelopeError{fmt.Errorf("envelope object s3://%s/%s: %w", q.o.Bucket, w.EnvKey, err)}
	}
	return nil
}

// badEnvelopeError: an envelope object that exists and is not a valid
// envelope (as opposed to one S3 could not read just now).
type badEnvelopeError struct{ err error }

func (e *badEnvelopeError) Error() string { return e.err.Error() }
func (e *badEnvelopeError) Unwrap() error { return e.err }

// deleteEnvObject removes an envelope object, best effort: the lifecycle
// rule on the prefix removes one left behind.
func (q *Queue) deleteEnvObject(ctx context.Context, envKey, id string) {
	if envKey == "" {
		return
	}
	if err := q.deleteBody(ctx, envKey); err != nil {
		q.log.Warn("sqs queue: envelope object left behind; the lifecycle rule removes it", "id", id, "key", envKey, "err", err)
	}
}
