package outbound

import (
	"context"

	"github.com/edgerelay/edgerelay/queue"
)

// sesHop delivers through the Amazon SES v2 API (ses://REGION).
// (skeleton: issue 12's SES gateway replaces it)
type sesHop struct {
	w   *Worker
	cfg GatewayConfig
}

func (w *Worker) newSESHop(cfg GatewayConfig) hop { return &sesHop{w: w, cfg: cfg} }

func (h *sesHop) name() string { return h.cfg.URL }

func (h *sesHop) deliver(ctx context.Context, m *queue.Message, idx []int) (map[int]result, bool) {
	return nil, true
}
