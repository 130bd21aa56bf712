package outbound

import (
	"context"
	"io"

	"github.com/edgerelay/edgerelay/queue"
)

// has8BitBody reports whether m's body holds a byte with the high bit set.
// It is asked only for a hop that does not offer 8BITMIME, whatever BODY the
// client declared: a client may declare 8BITMIME for an ASCII body, which
// goes anywhere, and may send 8-bit bytes without declaring them. The body
// is streamed and the scan stops at the first such byte.
func (w *Worker) has8BitBody(ctx context.Context, m *queue.Message) (bool, error) {
	body, err := w.q.Body(ctx, m)
	if err != nil {
		return false, err
	}
	defer body.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		for _, c := range buf[:n] {
			if c >= 0x80 {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}
