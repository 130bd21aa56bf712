package sqs

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// TestEncodeWireSQSText (issue 8 item 24): the wire form of an envelope
// holding characters that SQS refuses raw satisfies the documented SQS
// character rule (checked by the stand-in's independent ValidSQSText) and
// decodes back to the same strings.
func TestEncodeWireSQSText(t *testing.T) {
	key := func(id string) string { return "queue/" + id + ".eml" }
	env := wireEnvelope(1, 0)
	env.From = "a\uFFFEb@example.com"
	env.MessageID = "<\uFFFF@x>"
	env.Recipients[0].Reply = &queue.Reply{Code: 451, Lines: []string{"busy \uFFFE\uFFFF \x00\x1f\x7f \u2028 end"}}
	data, err := encodeWire(env, key(env.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !awstest.ValidSQSText(string(data)) {
		t.Fatalf("wire form breaks the SQS character rule: %q", data)
	}
	w, err := decodeWire(string(data), key)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.Envelope, env) {
		t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", w.Envelope, env)
	}
	obj, err := encodeEnvelopeObject(env)
	if err != nil || !awstest.ValidSQSText(string(obj)) {
		t.Fatalf("envelope object: %v, valid SQS text %v", err, awstest.ValidSQSText(string(obj)))
	}
}

// asJSONText is what a string becomes through encoding/json: each byte of
// invalid UTF-8 becomes U+FFFD.
func asJSONText(s string) string { return string([]rune(s)) }

// FuzzSQSWire: any envelope, its strings fuzzed (invalid UTF-8, control
// and non-XML characters included), encodes to SQS message text that
// satisfies the SQS character rule and fits in 256 KiB, or is refused with
// ErrEnvelopeTooLarge (then its envelope object satisfies the rule too);
// and decodes back to an equal envelope, modulo invalid UTF-8, which
// becomes U+FFFD per invalid byte. Each case must finish within 2 s.
func FuzzSQSWire(f *testing.F) {
	f.Add("alice@example.com", "bob@example.net", "250 ok", "mx.example.net", "<id@x>", "ENV1", "rfc822;bob@example.net", 1)
	f.Add("a\uFFFE@x", "b\uFFFF@y", "\xff\xfe\x00 reply \U0010FFFF", "\ud7ff", "\x80", "", "", 700)
	f.Add("", "\x00", strings.Repeat("\uFFFF", 400), "", "", "\u2028", "", 399)
	key := func(id string) string { return "queue/" + id + ".eml" }
	f.Fuzz(func(t *testing.T, from, rcpt, reply, mta, msgID, envID, orcpt string, n int) {
		n = 1 + int(uint(n)%400)
		done := make(chan struct{})
		go func() {
			defer close(done)
			env := &queue.Envelope{ID: "06H2FSST3XFMJ0DAC53T", From: from, MessageID: msgID, EnvID: envID,
				Arrival: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Size: 1234}
			for i := range n {
				r := queue.Recipient{Addr: rcpt, ORCPT: orcpt, Status: queue.StatusPending, RemoteMTA: mta}
				if i%2 == 0 {
					r.Reply = &queue.Reply{Code: 451, Enhanced: "4.0.0", Lines: []string{reply, mta}}
				}
				env.Recipients = append(env.Recipients, r)
			}
			data, err := encodeWire(env, key(env.ID), 5)
			if errors.Is(err, ErrEnvelopeTooLarge) {
				obj, err := encodeEnvelopeObject(env)
				if err != nil {
					if !errors.Is(err, ErrEnvelopeTooLarge) {
						t.Errorf("encodeEnvelopeObject: %v", err)
					}
					return
				}
				if !awstest.ValidSQSText(string(obj)) {
					t.Errorf("envelope object breaks the SQS character rule")
				}
				return
			}
			if err != nil {
				t.Errorf("encodeWire: %v", err)
				return
			}
			if len(data) > MaxSQSMessageSize || !awstest.ValidSQSText(string(data)) {
				t.Errorf("wire form of %d bytes breaks the SQS rules: %q", len(data), data[:min(len(data), 300)])
				return
			}
			w, err := decodeWire(string(data), key)
			if err != nil {
				t.Errorf("decodeWire of encodeWire: %v", err)
				return
			}
			got, r := w.Envelope, w.Envelope.Recipients[0]
			if got.From != asJSONText(from) || got.MessageID != asJSONText(msgID) || got.EnvID != asJSONText(envID) ||
				len(got.Recipients) != n || r.Addr != asJSONText(rcpt) || r.ORCPT != asJSONText(orcpt) ||
				r.RemoteMTA != asJSONText(mta) || r.Reply == nil || r.Reply.Lines[0] != asJSONText(reply) ||
				!got.Arrival.Equal(env.Arrival) || got.Size != env.Size || w.Delay != 5 {
				t.Errorf("round trip changed the envelope: %+v", got)
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("encode/decode took over 2 s")
		}
	})
}
