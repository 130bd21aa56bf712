package queue_test

import (
	"slices"
	"sync"
	"testing"
	"time"
)

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
