package outbound

import (
	"context"
	"io"

	"github.com/edgerelay/edgerelay/queue"
)

// errNeeds8BitMIME is the verdict for an 8-bit body and a hop without
// 8BITMIME. RFC 6152 §3: a server that relays a message with an 8-bit body
// to a server that does not offer 8BITMIME must either convert it to 7 bits
// or return a non-delivery notification. Converting arbitrary MIME (nested
// multiparts, signed parts that conversion would break) is not done here,
// so the recipients fail with RFC 3463 §3.7's X.6.3 "conversion required
// but not supported".
var errNeeds8BitMIME = permLocal(554, "5.6.3",
	"host does not support 8BITMIME, which this message needs, and conversion to 7 bits is not supported (RFC 6152)")

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
