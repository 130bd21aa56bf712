package queuetest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// BenchEnqueue measures durable Enqueue of a 10 KiB body from 16 parallel
// sessions (SetParallelism(8) on 2 cores) and reports msgs/s and the
// latency of one Enqueue (p50, p99).
func BenchEnqueue(b *testing.B, q queue.Queue, env func() *queue.Envelope) {
	body := strings.Repeat("0123456789abcdef", 640) // 10 KiB
	b.SetBytes(int64(len(body)))
	b.SetParallelism(8)
	var lat latencies
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := lat.time(func() error {
				_, err := q.Enqueue(context.Background(), env(), strings.NewReader(body))
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	lat.report(b)
}

// latencies records how long each operation of a benchmark took, to report
// percentiles next to the throughput (numbers are reported, not asserted).
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// time runs fn and records its duration.
func (l *latencies) time(fn func() error) error {
	t0 := time.Now()
	err := fn()
	d := time.Since(t0)
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
	return err
}

// report adds p50_ms and p99_ms to the benchmark's output.
func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
}
