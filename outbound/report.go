package outbound

import (
	"context"
	"io"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// ReportRequest asks for one report about some recipients of a message.
type ReportRequest struct {
	// Message is the leased message; its Envelope carries per-recipient state.
	Message *queue.Message
	// Kind is the report's Action.
	Kind dsn.Action
	// Recipients are indexes into Message.Envelope.Recipients.
	Recipients []int
	// Body opens the original message, for the returned headers or content.
	Body func(ctx context.Context) (io.ReadCloser, error)
	// WillRetryUntil is when the queue gives up (delayed reports).
	WillRetryUntil time.Time
}
