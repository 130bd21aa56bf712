package queue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

func validEnvelope() *queue.Envelope {
	return &queue.Envelope{
		From:       "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", ORCPT: "rfc822;bob@example.net"}},
		EnvID:      "QQ314159",
	}
}

// TestEnvelopeValidate: an envelope with no recipients, or with a NUL or
// another control character in an address, ORCPT or ENVID, is refused
// with ErrInvalidEnvelope (issue 8 items 1 and 6); ordinary ones pass,
// including the null reverse-path and UTF-8 addresses.
func TestEnvelopeValidate(t *testing.T) {
	ok := []func(e *queue.Envelope){
		func(e *queue.Envelope) {},
		func(e *queue.Envelope) { e.From = "" },
		func(e *queue.Envelope) { e.Recipients[0].Addr = "jörg@bücher.example" },
		func(e *queue.Envelope) { e.EnvID = "" },
	}
	for i, mod := range ok {
		e := validEnvelope()
		mod(e)
		if err := e.Validate(); err != nil {
			t.Errorf("valid case %d: Validate() = %v", i, err)
		}
	}
	bad := map[string]func(e *queue.Envelope){
		"nil recipients":   func(e *queue.Envelope) { e.Recipients = nil },
		"empty recipients": func(e *queue.Envelope) { e.Recipients = []queue.Recipient{} },
		"empty rcpt addr":  func(e *queue.Envelope) { e.Recipients[0].Addr = "" },
		"NUL in rcpt":      func(e *queue.Envelope) { e.Recipients[0].Addr = "a@b.example\x00@evil.example" },
		"NUL in from":      func(e *queue.Envelope) { e.From = "a\x00@b.example" },
		"CR in from":       func(e *queue.Envelope) { e.From = "a@b.example\r\nRCPT TO:<x@y>" },
		"LF in rcpt":       func(e *queue.Envelope) { e.Recipients[0].Addr = "a@b.example\n" },
		"TAB in rcpt":      func(e *queue.Envelope) { e.Recipients[0].Addr = "a\t@b.example" },
		"DEL in rcpt":      func(e *queue.Envelope) { e.Recipients[0].Addr = "a\x7f@b.example" },
		"ESC in orcpt":     func(e *queue.Envelope) { e.Recipients[0].ORCPT = "rfc822;a\x1b@b.example" },
		"NUL in envid":     func(e *queue.Envelope) { e.EnvID = "Q\x00Q" },
		"C1 in second rcpt": func(e *queue.Envelope) {
			e.Recipients = append(e.Recipients, queue.Recipient{Addr: "c\u0085@d.example"})
		},
		"invalid UTF-8": func(e *queue.Envelope) { e.Recipients[0].Addr = "a\xff@b.example" },
	}
	for name, mod := range bad {
		e := validEnvelope()
		mod(e)
		err := e.Validate()
		if !errors.Is(err, queue.ErrInvalidEnvelope) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidEnvelope", name, err)
			continue
		}
		if strings.ContainsAny(err.Error(), "\x00\r\n\x7f\x1b") {
			t.Errorf("%s: error text carries the control character raw: %q", name, err)
		}
	}
}
