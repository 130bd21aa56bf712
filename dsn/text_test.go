package dsn

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// invalidRun is what the issue found: a next hop answering with about
// 1,000 bytes that are not UTF-8 and contain no space.
var invalidRun = strings.Repeat("\x80", 1000)

// TestLineBreakersProgress: every function that breaks long lines of
// remote bytes ends, whatever the bytes (issue 8 item 4).
func TestLineBreakersProgress(t *testing.T) {
	inputs := []string{
		invalidRun,
		"Diagnostic-Code: smtp; 550 5.0.0 " + invalidRun,
		strings.Repeat("\xbf", 5000),
		"X: " + strings.Repeat("\xe2\x82", 1500),
	}
	for _, in := range inputs {
		testutil.ReturnsWithin(t, 2*time.Second, "fold", func() {
			for _, l := range strings.Split(fold(in), "\r\n") {
				if len(l) > maxLine {
					t.Errorf("fold left a line of %d bytes", len(l))
				}
			}
		})
		testutil.ReturnsWithin(t, 2*time.Second, "crlf", func() {
			for _, l := range bytes.Split(crlf(in), []byte("\r\n")) {
				if len(l) > maxLine {
					t.Errorf("crlf left a line of %d bytes", len(l))
				}
			}
		})
		testutil.ReturnsWithin(t, 2*time.Second, "normalizeLines", func() {
			out, _ := normalizeLines([]byte(in), true)
			for _, l := range bytes.Split(out, []byte("\r\n")) {
				if len(l) > maxLine {
					t.Errorf("normalizeLines left a line of %d bytes", len(l))
				}
			}
		})
	}
}
