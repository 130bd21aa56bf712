package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// sqsWireVersion is the version of the SQS message format.
const sqsWireVersion = 1

// sqsWire is the body of an SQS message: the whole envelope, per-recipient
// state, attempts and Arrival included, so that the queue lifetime, retries
// and reports work as with the spool; and the key of the body object
// (claim-check). The JSON is valid SQS message text: encoding/json escapes
// control characters and replaces invalid UTF-8.
//
// Delay is the DelaySeconds the message was sent with; with SentTimestamp
// and NextAttempt it tells how many receives only re-armed a long delay.
type sqsWire struct {
	V        int       `json:"v"`
	Key      string    `json:"key"`
	Delay    int32     `json:"delay,omitempty"`
	Envelope *Envelope `json:"envelope"`
}

// ErrEnvelopeTooLarge is returned when an envelope does not fit in one SQS
// message (MaxSQSMessageSize), typically because of a very large number of
// recipients.
var ErrEnvelopeTooLarge = errors.New("envelope too large for an SQS message")

// encodeWire returns the SQS message body for env. When it is too large,
// the recipients' replies are cut to their first line and tried again;
// when it is still too large, the error wraps ErrEnvelopeTooLarge.
func encodeWire(env *Envelope, key string, delay int32) ([]byte, error) {
	data, err := json.Marshal(sqsWire{V: sqsWireVersion, Key: key, Delay: delay, Envelope: env})
	if err != nil {
		return nil, err
	}
	if len(data) <= MaxSQSMessageSize {
		return data, nil
	}
	short := env.Clone()
	for i := range short.Recipients {
		if r := short.Recipients[i].Reply; r != nil && len(r.Lines) > 0 {
			line := r.Lines[0]
			if len(line) > 200 {
				line = line[:200]
			}
			r.Lines = []string{line}
		}
	}
	shorter, err := json.Marshal(sqsWire{V: sqsWireVersion, Key: key, Delay: delay, Envelope: short})
	if err != nil {
		return nil, err
	}
	if len(shorter) > MaxSQSMessageSize {
		return nil, fmt.Errorf("%w: %d bytes with %d recipients, the limit is %d", ErrEnvelopeTooLarge, len(data), len(env.Recipients), MaxSQSMessageSize)
	}
	return shorter, nil
}

// checkWireSize checks before a body is uploaded that env, once its Size is
// known, will fit in an SQS message.
func checkWireSize(env *Envelope, key string) error {
	probe := *env
	probe.Size = math.MaxInt64
	_, err := encodeWire(&probe, key, 0)
	return err
}

// decodeWire parses and checks an SQS message body; wantKey maps the
// envelope's ID to the body key this queue uses.
func decodeWire(body string, wantKey func(id string) string) (*sqsWire, error) {
	var w sqsWire
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		return nil, fmt.Errorf("not an edgerelay envelope: %w", err)
	}
	switch {
	case w.V != sqsWireVersion:
		return nil, fmt.Errorf("envelope format version %d, want %d", w.V, sqsWireVersion)
	case w.Envelope == nil:
		return nil, errors.New("no envelope")
	case !ValidID(w.Envelope.ID):
		return nil, fmt.Errorf("invalid message ID %q", w.Envelope.ID)
	case len(w.Envelope.Recipients) == 0:
		return nil, errors.New("no recipients")
	case w.Envelope.Arrival.IsZero():
		return nil, errors.New("no arrival time")
	case w.Key != wantKey(w.Envelope.ID):
		return nil, fmt.Errorf("body key %q, want %q (a different RELAY_S3_PREFIX?)", w.Key, wantKey(w.Envelope.ID))
	}
	return &w, nil
}
