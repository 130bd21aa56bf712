package sqs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/edgerelay/edgerelay/queue"
)

func wireEnvelope(nrcpt int, replyLines int) *queue.Envelope {
	env := &queue.Envelope{ID: "06H2FSST3XFMJ0DAC53T", From: "alice@example.com", Arrival: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for i := range nrcpt {
		r := queue.Recipient{Addr: fmt.Sprintf("rcpt%d@example.net", i), Status: queue.StatusPending}
		if replyLines > 0 {
			r.Reply = &queue.Reply{Code: 451, Enhanced: "4.3.0"}
			for range replyLines {
				r.Reply.Lines = append(r.Reply.Lines, strings.Repeat("x", 500))
			}
		}
		env.Recipients = append(env.Recipients, r)
	}
	return env
}

func TestEncodeWire(t *testing.T) {
	key := func(id string) string { return "queue/" + id + ".eml" }
	// Inline: fits in one SQS message and round-trips.
	env := wireEnvelope(2, 3)
	data, err := encodeWire(env, key(env.ID), 900)
	if err != nil {
		t.Fatal(err)
	}
	w, err := decodeWire(string(data), key)
	if err != nil {
		t.Fatalf("decodeWire of encodeWire: %v", err)
	}
	if w.Delay != 900 || w.Envelope.ID != env.ID || len(w.Envelope.Recipients) != 2 || len(w.Envelope.Recipients[0].Reply.Lines) != 3 {
		t.Fatalf("round trip lost data: %+v", w)
	}
	// Too large inline: the queue keeps it as an envelope object, whole.
	big := wireEnvelope(100, 10)
	if _, err := encodeWire(big, key(big.ID), 0); !errors.Is(err, ErrEnvelopeTooLarge) {
		t.Fatalf("encodeWire of %d recipients with long replies: %v, want ErrEnvelopeTooLarge", len(big.Recipients), err)
	}
	obj, err := encodeEnvelopeObject(big)
	if err != nil {
		t.Fatalf("encodeEnvelopeObject: %v", err)
	}
	var back queue.Envelope
	if err := json.Unmarshal(obj, &back); err != nil || len(back.Recipients[99].Reply.Lines) != 10 {
		t.Fatalf("envelope object did not round-trip: %v", err)
	}
	// The pointer message names the object and checks its key.
	envKey := envKeyPrefix(key(big.ID)) + queue.NewID() + ".json"
	ptr, err := encodePointer(big.ID, key(big.ID), envKey, 60)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := decodeWire(string(ptr), key); err != nil || w.EnvKey != envKey || w.Envelope != nil || w.Delay != 60 {
		t.Fatalf("decodeWire(pointer) = %+v, %v", w, err)
	}
	// An envelope that could outgrow an envelope object is refused up front.
	if err := checkWorstCase(wireEnvelope(10000, 0)); !errors.Is(err, ErrEnvelopeTooLarge) {
		t.Fatalf("checkWorstCase(10000 recipients): %v, want ErrEnvelopeTooLarge", err)
	}
	if err := checkWorstCase(wireEnvelope(2000, 0)); err != nil {
		t.Fatalf("checkWorstCase(2000 recipients): %v", err)
	}
}

// TestWorstCaseSize: the worst case computed at enqueue is not below what
// the worker can really make of the envelope.
func TestWorstCaseSize(t *testing.T) {
	env := wireEnvelope(50, 0)
	for i := range env.Recipients {
		env.Recipients[i].ORCPT = "rfc822;" + env.Recipients[i].Addr
		env.Recipients[i].Notify = []string{queue.NotifySuccess, queue.NotifyFailure, queue.NotifyDelay}
	}
	worst, err := worstCaseSize(env)
	if err != nil {
		t.Fatal(err)
	}
	full := env.Clone()
	for i := range full.Recipients {
		r := &full.Recipients[i]
		r.Status, r.Attempts, r.LastAttempt = queue.StatusFailed, 1<<30, time.Now()
		r.Reply = &queue.Reply{Code: 554, Enhanced: "5.7.1", Lines: []string{strings.Repeat("\uFFFE", queue.MaxReplyText/3)}}
		r.RemoteMTA = strings.Repeat("\x7f", queue.MaxRemoteMTA)
		r.Reported, r.DelayReported = true, true
	}
	full.Size, full.Attempts, full.NextAttempt, full.DelayWarned = 1<<60, 1<<30, time.Now(), true
	data, err := marshalSQS(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > worst {
		t.Fatalf("an envelope at the recorded limits encodes to %d bytes, over the worst case %d", len(data), worst)
	}
}

func TestDecodeWireRejects(t *testing.T) {
	key := func(id string) string { return "queue/" + id + ".eml" }
	good := func(mod func(w map[string]any, env map[string]any)) string {
		var env map[string]any
		b, _ := json.Marshal(wireEnvelope(1, 0))
		json.Unmarshal(b, &env)
		w := map[string]any{"v": 1, "key": "queue/06H2FSST3XFMJ0DAC53T.eml", "envelope": env}
		if mod != nil {
			mod(w, env)
		}
		out, _ := json.Marshal(w)
		return string(out)
	}
	if _, err := decodeWire(good(nil), key); err != nil {
		t.Fatalf("valid message refused: %v", err)
	}
	tests := []struct {
		name, body, want string
	}{
		{"not json", "hello", "not an edgerelay envelope"},
		{"other version", good(func(w, _ map[string]any) { w["v"] = 2 }), "version 2"},
		{"no envelope", good(func(w, _ map[string]any) { delete(w, "envelope") }), "no envelope"},
		{"bad id", good(func(_, e map[string]any) { e["id"] = "../etc/passwd" }), "invalid message ID"},
		{"no recipients", good(func(_, e map[string]any) { e["recipients"] = nil }), "no recipients"},
		{"no arrival", good(func(_, e map[string]any) { delete(e, "arrival") }), "no arrival"},
		{"foreign key", good(func(w, _ map[string]any) { w["key"] = "other/06H2FSST3XFMJ0DAC53T.eml" }), "a different S3 prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeWire(tt.body, key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decodeWire: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeWire(f *testing.F) {
	b, _ := encodeWire(wireEnvelope(2, 1), "queue/06H2FSST3XFMJ0DAC53T.eml", 0)
	f.Add(string(b))
	f.Add(`{"v":1}`)
	f.Add(`{"v":1,"key":"queue/06H2FSST3XFMJ0DAC53T.eml","id":"06H2FSST3XFMJ0DAC53T","env_key":"queue/06H2FSST3XFMJ0DAC53T.env-06H2FSST3XFMJ0DAC53U.json"}`)
	key := func(id string) string { return "queue/" + id + ".eml" }
	f.Fuzz(func(t *testing.T, body string) {
		w, err := decodeWire(body, key)
		if err != nil {
			return
		}
		if w.EnvKey != "" {
			if w.Envelope != nil || !queue.ValidID(w.ID) || w.Key != key(w.ID) || !validEnvKey(w.EnvKey, w.Key) {
				t.Fatalf("accepted an invalid pointer message: %q", body)
			}
			return
		}
		if !queue.ValidID(w.Envelope.ID) || len(w.Envelope.Recipients) == 0 || w.Key != key(w.Envelope.ID) {
			t.Fatalf("accepted an invalid message: %q", body)
		}
	})
}

func TestClaimAttempts(t *testing.T) {
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		attempts, recv int
		delay          time.Duration
		next           time.Time
		want           int
	}{
		{"first receive", 0, 1, 0, time.Time{}, 1},
		{"after a reschedule", 3, 1, 0, sent, 4},
		{"one crash", 0, 2, 0, time.Time{}, 2},
		{"two crashes", 1, 3, 0, time.Time{}, 4},
		{"short delay, no re-arm", 2, 1, 10 * time.Minute, sent.Add(10 * time.Minute), 3},
		{"1 h delay: one re-arm", 2, 2, 15 * time.Minute, sent.Add(time.Hour), 3},
		{"1 h delay: one re-arm and a crash", 2, 3, 15 * time.Minute, sent.Add(time.Hour), 4},
		{"13 h delay: two re-arms", 2, 3, 15 * time.Minute, sent.Add(13 * time.Hour), 3},
		{"receive count missing", 5, 0, 0, time.Time{}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := claimAttempts(tt.attempts, tt.recv, rearms(sent, tt.delay, tt.next)); got != tt.want {
				t.Errorf("attempts = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRearmVisibility(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		next    time.Time
		want    time.Duration
		wantArm bool
	}{
		{time.Time{}, 0, false},
		{now.Add(-time.Hour), 0, false},
		{now.Add(time.Second), 0, false}, // within the clock slack: due
		{now.Add(10 * time.Minute), 10 * time.Minute, true},
		{now.Add(13 * time.Hour), maxVisibility, true},
	}
	for _, tt := range tests {
		got, arm := rearmFor(tt.next, now)
		if got != tt.want || arm != tt.wantArm {
			t.Errorf("rearmFor(now%+v) = %v, %v; want %v, %v", tt.next.Sub(now), got, arm, tt.want, tt.wantArm)
		}
	}
	if s := seconds(1500 * time.Millisecond); s != 2 {
		t.Errorf("seconds(1.5s) = %d, want 2 (rounded up)", s)
	}
}

func TestClassifyAWS(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{&smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}, ErrAccessDenied},
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, ErrAccessDenied},
		{&smithy.GenericAPIError{Code: "InvalidClientTokenId"}, ErrBadCredentials},
		{&smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, ErrBadCredentials},
		{fmt.Errorf("operation error SQS: GetQueueAttributes, get identity: get credentials: %w", errors.New("no EC2 IMDS role found")), ErrNoCredentials},
	}
	for _, tt := range tests {
		if err := classifyAWS(tt.err, "sqs:GetQueueAttributes"); !errors.Is(err, tt.want) {
			t.Errorf("classifyAWS(%v) = %v, want %v", tt.err, err, tt.want)
		}
	}
	if err := classifyAWS(errors.New("connection refused"), "x"); errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNoCredentials) {
		t.Errorf("a network error was classified as %v", err)
	}
}
