package spool_test

import (
	"context"
	"runtime"
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

// BenchmarkSpoolEnqueueLeaseCompleteParallel16 is the same life of a
// 10 KiB message with 16 goroutines at once, with the journal (the
// default: Enqueue, claim and Complete are records in one file, group
// committed) and with the one-file path (journal off), for issue 10's
// before and after.
func BenchmarkSpoolEnqueueLeaseCompleteParallel16(b *testing.B) {
	for _, c := range []struct {
		name string
		max  int
	}{{"journal", 0}, {"onefile", -1}} {
		b.Run(c.name, func(b *testing.B) {
			s := openSpool(b, b.TempDir(), spool.Options{JournalMaxBytes: c.max})
			body := strings.Repeat("0123456789abcdef", 640) // 10 KiB
			ctx := context.Background()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Enqueue(ctx, envelope("bob@example.net"), strings.NewReader(body)); err != nil {
						b.Error(err)
						return
					}
					m, err := s.Lease(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.Complete(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
