package spool_test

import (
	"context"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue/spool"
)

// BenchmarkSpoolEnqueueLeaseComplete measures one message's whole life in
// the spool, serially: a durable Enqueue of a 10 KiB body, its claim
// (Lease) and its Complete. Run under strace -c -f to count the file
// creations and fsyncs per message (issue 10).
func BenchmarkSpoolEnqueueLeaseComplete(b *testing.B) {
	s := openSpool(b, b.TempDir(), spool.Options{})
	body := strings.Repeat("0123456789abcdef", 640) // 10 KiB
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Enqueue(ctx, envelope("bob@example.net"), strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
		m, err := s.Lease(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
