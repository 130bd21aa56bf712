package queue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestEnvelopeRouteValidated: Envelope.Route, written by the worker and
// read back from the queue with the rest, is a route key or empty: a
// lower-case A-label domain of at most MaxRoute bytes. A stored envelope
// whose route is anything else (control characters, megabytes logged at
// each attempt, an address literal) is refused like any other bad field.
func TestEnvelopeRouteValidated(t *testing.T) {
	label := strings.Repeat("a", 63)
	for _, r := range []string{"", "example.org", "xn--bcher-kva.example", label + "." + label + "." + label + "." + strings.Repeat("b", 61)} {
		e := validEnvelope()
		e.Route = r
		if err := e.Validate(); err != nil {
			t.Errorf("route %q: %v", r, err)
		}
	}
	for _, r := range []string{"ex\x00ample.org", "ex\nample.org", "Example.org", "bücher.example", "[127.0.0.1]", "a..b",
		label + "." + label + "." + label + "." + strings.Repeat("b", 62), strings.Repeat("x", 1<<20)} {
		e := validEnvelope()
		e.Route = r
		if err := e.Validate(); !errors.Is(err, queue.ErrInvalidEnvelope) || strings.ContainsRune(err.Error(), 0) {
			t.Errorf("route %.40q: Validate() = %.200v", r, err)
		}
	}
}
