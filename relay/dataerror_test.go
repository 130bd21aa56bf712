package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestDataErrorReplyQueueErrors: what a queue backend's error at the final
// dot becomes: a full store 452 4.3.1, an envelope the queue refuses for
// good 554 5.5.0, any other failure 451 4.3.0, with no internals shown.
func TestDataErrorReplyQueueErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		enh  [3]int
	}{
		{fmt.Errorf("spool: enqueue X: %w: no space", queue.ErrInsufficientStorage), 452, [3]int{4, 3, 1}},
		{fmt.Errorf("spool: enqueue X: %w: envelope of 70000000 bytes", queue.ErrInvalidEnvelope), 554, [3]int{5, 5, 0}},
		{errors.New("spool: enqueue X: EIO /var/spool/secret"), 451, [3]int{4, 3, 0}},
	} {
		r := dataErrorReply(tc.err)
		if r.Code != tc.code || [3]int(r.EnhancedCode) != tc.enh {
			t.Errorf("%v: %d %v, want %d %v", tc.err, r.Code, r.EnhancedCode, tc.code, tc.enh)
		}
	}
}
