package sqs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/queue"
)

// sqsWireVersion is the version of the SQS message format.
const sqsWireVersion = 1

// sqsWire is the body of an SQS message: the whole envelope, per-recipient
// state, attempts and Arrival included, so that the queue lifetime, retries
// and reports work as with the spool; and the key of the body object
// (claim-check).
//
// An envelope too large for an SQS message (hundreds of recipients, each
// with a recorded reply: issue 8 item 3) is kept as an S3 object of its
// own, EnvKey, next to the body; the message then carries ID and EnvKey
// instead of Envelope. Every Reschedule writes a new envelope object (its
// key is unique) and deletes the one it replaces once the new message is
// sent, so an older copy of the message finds its envelope gone and is
// known to be stale.
//
// Delay is the DelaySeconds the message was sent with; with SentTimestamp
// and NextAttempt it tells how many receives only re-armed a long delay.
type sqsWire struct {
	V        int             `json:"v"`
	Key      string          `json:"key"`
	Delay    int32           `json:"delay,omitempty"`
	ID       string          `json:"id,omitempty"`
	EnvKey   string          `json:"env_key,omitempty"`
	Envelope *queue.Envelope `json:"envelope,omitempty"`
}

// ErrEnvelopeTooLarge is returned when an envelope cannot be stored even as
// an S3 object (maxEnvelopeObject), or could outgrow that once every
// recipient holds a reply: an absurd number of recipients.
var ErrEnvelopeTooLarge = errors.New("envelope too large for the SQS queue")

// maxEnvelopeObject bounds an envelope kept as an S3 object; it is read
// whole into memory when the message is received.
const maxEnvelopeObject = 16 << 20

// marshalSQS is json.Marshal made valid SQS message text. SQS accepts only
// the characters #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
// #x10000 to #x10FFFF (the SQS API reference, SendMessage, MessageBody);
// encoding/json escapes control characters and replaces invalid UTF-8 with
// U+FFFD, but writes U+FFFE and U+FFFF raw, and a reply holding them made
// every Reschedule fail (issue 8 item 24). They are written as JSON \u
// escapes, which decode back to the same characters: the wire form is
// reversible for every valid string, and invalid UTF-8 becomes U+FFFD (one
// per invalid byte), as encoding/json always did.
func marshalSQS(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return sqsEscape(data), nil
}

// sqsRune reports whether SQS accepts r in a message body.
func sqsRune(r rune) bool {
	switch {
	case r == 0x9, r == 0xA, r == 0xD:
		return true
	case r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// sqsEscape rewrites every character of JSON text that SQS refuses as a
// \u escape. JSON text from encoding/json has such characters only inside
// strings (everything else is ASCII), where an escape means the same
// character.
func sqsEscape(data []byte) []byte {
	clean := true
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && size == 1) || !sqsRune(r) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return data
	}
	var b bytes.Buffer
	b.Grow(len(data) + 64)
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		case !sqsRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(data[i : i+size])
		}
		i += size
	}
	return b.Bytes()
}

// encodeWire returns the SQS message body that carries env inline; when it
// is larger than an SQS message allows, the error wraps
// ErrEnvelopeTooLarge (the queue then keeps the envelope in S3).
func encodeWire(env *queue.Envelope, key string, delay int32) ([]byte, error) {
	data, err := marshalSQS(sqsWire{V: sqsWireVersion, Key: key, Delay: delay, Envelope: env})
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSQSMessageSize {
		return nil, fmt.Errorf("%w: %d bytes with %d recipients, an SQS message holds %d", ErrEnvelopeTooLarge, len(data), len(env.Recipients), MaxSQSMessageSize)
	}
	return data, nil
}

// encodePointer returns the SQS message body for an envelope kept in S3 at
// envKey.
func encodePointer(id, key, envKey string, delay int32) ([]byte, error) {
	return marshalSQS(sqsWire{V: sqsWireVersion, Key: key, Delay: delay, ID: id, EnvKey: envKey})
}

// envKeyPrefix is what the key of every envelope object of message id
// starts with: <prefix><id>.env-, next to the body <prefix><id>.eml.
func envKeyPrefix(bodyKey string) string { return strings.TrimSuffix(bodyKey, ".eml") + ".env-" }

// validEnvKey reports whether envKey is an envelope object key of the
// message whose body is bodyKey: <prefix><id>.env-<unique>.json.
func validEnvKey(envKey, bodyKey string) bool {
	rest, ok := strings.CutPrefix(envKey, envKeyPrefix(bodyKey))
	if !ok {
		return false
	}
	u, ok := strings.CutSuffix(rest, ".json")
	return ok && queue.ValidID(u)
}

// decodeWire parses and checks an SQS message body; wantKey maps the
// envelope's ID to the body key this queue uses. A message that points to
// an envelope object comes back with Envelope nil: the caller loads it and
// checks it with checkWireEnvelope.
func decodeWire(body string, wantKey func(id string) string) (*sqsWire, error) {
	var w sqsWire
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		return nil, fmt.Errorf("not an edgerelay envelope: %w", err)
	}
	switch {
	case w.V != sqsWireVersion:
		return nil, fmt.Errorf("envelope format version %d, want %d", w.V, sqsWireVersion)
	case w.EnvKey != "":
		switch {
		case w.Envelope != nil:
			return nil, errors.New("both an envelope and an envelope object")
		case !queue.ValidID(w.ID):
			return nil, fmt.Errorf("invalid message ID %q", w.ID)
		case w.Key != wantKey(w.ID):
			return nil, fmt.Errorf("body key %q, want %q (a different S3 prefix?)", w.Key, wantKey(w.ID))
		case !validEnvKey(w.EnvKey, w.Key):
			return nil, fmt.Errorf("envelope object key %q is not one of message %s", w.EnvKey, w.ID)
		}
		return &w, nil
	case w.Envelope == nil:
		return nil, errors.New("no envelope")
	}
	if err := checkWireEnvelope(&w, wantKey); err != nil {
		return nil, err
	}
	return &w, nil
}

// checkWireEnvelope checks the envelope of a decoded message (inline, or
// loaded from its object).
func checkWireEnvelope(w *sqsWire, wantKey func(id string) string) error {
	switch {
	case !queue.ValidID(w.Envelope.ID):
		return fmt.Errorf("invalid message ID %q", w.Envelope.ID)
	case w.EnvKey != "" && w.Envelope.ID != w.ID:
		return fmt.Errorf("envelope object of message %q holds message %q", w.ID, w.Envelope.ID)
	case len(w.Envelope.Recipients) == 0:
		return errors.New("no recipients")
	case w.Envelope.Arrival.IsZero():
		return errors.New("no arrival time")
	case w.Key != wantKey(w.Envelope.ID):
		return fmt.Errorf("body key %q, want %q (a different S3 prefix?)", w.Key, wantKey(w.Envelope.ID))
	}
	return nil
}
