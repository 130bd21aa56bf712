package outbound

import (
	"context"
	"io"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// BounceStore is the dedicated store that holds the reports edgerelay writes
// and nothing else (ARCHITECTURE.md, "The bounce store").
type BounceStore interface {
	// Put stores one report under key. Keys are deterministic per report, so
	// a retry after a crash finds the key present and stores nothing new:
	// each report is stored once.
	Put(ctx context.Context, key string, msg io.Reader) error
	// String names the store for logs ("maildir:/data/bounces", "s3://b/p").
	String() string
}

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
