package queue

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidEnvelope is wrapped by Envelope.Validate, and so by every
// backend's Enqueue, for an envelope that must never be queued: one that no
// delivery could complete correctly.
var ErrInvalidEnvelope = errors.New("queue: invalid envelope")

// Validate checks the rules every queued envelope keeps, whatever the
// backend (issue 8 items 1 and 6):
//
//   - at least one recipient, each with a non-empty address: a message
//     without recipients would be "delivered" by completing it, so a 250
//     for it would be a message acknowledged and dropped;
//   - no control characters (C0, DEL, C1) and only valid UTF-8 in the
//     sender, any recipient address, ORCPT and ENVID. RFC 5321 §4.1.2 has no
//     control characters in a Mailbox, and RFC 3461 §4 encodes ORCPT and
//     ENVID as xtext (printable US-ASCII); a NUL or CR LF that reached the
//     next hop would split or truncate the address it sees;
//   - a Route that is empty or a route key: a lower-case ASCII domain
//     (A-labels) of at most MaxRoute bytes. The worker writes it and reads
//     it back from the queue with the rest.
//
// The error wraps ErrInvalidEnvelope and quotes the offending value (never
// the raw control character).
func (e *Envelope) Validate() error {
	if e == nil {
		return fmt.Errorf("%w: nil envelope", ErrInvalidEnvelope)
	}
	if len(e.Recipients) == 0 {
		return fmt.Errorf("%w: no recipients", ErrInvalidEnvelope)
	}
	if err := checkEnvelopeText("sender", e.From); err != nil {
		return err
	}
	if err := checkEnvelopeText("ENVID", e.EnvID); err != nil {
		return err
	}
	if !validRoute(e.Route) {
		return fmt.Errorf("%w: route %.60q is not a lower-case A-label domain of at most %d bytes", ErrInvalidEnvelope, e.Route, MaxRoute)
	}
	for i := range e.Recipients {
		r := &e.Recipients[i]
		if r.Addr == "" {
			return fmt.Errorf("%w: recipient %d has an empty address", ErrInvalidEnvelope, i+1)
		}
		if err := checkEnvelopeText("recipient", r.Addr); err != nil {
			return err
		}
		if err := checkEnvelopeText("ORCPT", r.ORCPT); err != nil {
			return err
		}
	}
	return nil
}

// checkEnvelopeText refuses invalid UTF-8 and control characters in one
// envelope field.
func checkEnvelopeText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidEnvelope, field, s)
	}
	if strings.IndexFunc(s, isControl) >= 0 {
		return fmt.Errorf("%w: %s %q contains a control character", ErrInvalidEnvelope, field, s)
	}
	return nil
}

// isControl reports C0 controls (NUL…US, TAB included), DEL and C1 controls.
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// validRoute: empty, or a domain in lower-case ASCII of at most MaxRoute
// bytes (outbound.CanonicalDomain's form).
func validRoute(r string) bool {
	if r == "" {
		return true
	}
	if len(r) > MaxRoute || r[0] == '[' || !ValidDomain(r) {
		return false
	}
	return !strings.ContainsFunc(r, func(c rune) bool { return c >= 0x80 || 'A' <= c && c <= 'Z' })
}
