//go:build unix

package spool_test

import (
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestOpenTwice: a spool held open by one Spool refuses a second Open,
// saying why.
func TestOpenTwice(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{})
	if _, err := spool.Open(dir, spool.Options{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open: %v", err)
	}
	s.Close()
	openSpool(t, dir, spool.Options{})
}
