package outbound

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Worker leases messages from the queue and delivers them.
type Worker struct {
	o       Options
	q       queue.Queue
	log     *slog.Logger
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	main    *gatewayList            // RELAY_GATEWAY; nil: MX
	routes  map[string]*gatewayList // by sender domain (routes.go)
	domains *limiter
	stats   counters
}

// Run delivers messages until ctx is cancelled, with Concurrency deliveries
// in flight. Then it waits for those, at most ShutdownGrace, and returns
// nil. It returns queue.ErrClosed if the queue is closed first.
func (w *Worker) Run(ctx context.Context) error {
	// Deliveries outlive ctx by up to ShutdownGrace.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	defer w.closeGateways()

	w.log.Info("delivery worker started", "concurrency", w.o.Concurrency, "route", w.route(),
		"retry", ScheduleString(w.o.RetrySchedule, w.o.QueueLifetime))
	var wg sync.WaitGroup
	for range w.o.Concurrency {
		wg.Go(func() { w.loop(ctx, work) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	select {
	case <-done:
		if ctx.Err() == nil {
			return queue.ErrClosed
		}
		return nil
	case <-ctx.Done():
	}
	grace := time.NewTimer(w.o.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		w.log.Warn("shutdown grace over, abandoning deliveries in flight; they are retried after restart",
			"grace", w.o.ShutdownGrace)
		abandon()
		<-done
	}
	w.log.Info("delivery worker stopped")
	return nil
}

func (w *Worker) route() string { return w.describeGateways() }

// loop leases and processes messages until ctx is done or the queue closes.
func (w *Worker) loop(ctx, work context.Context) {
	for {
		m, err := w.q.Lease(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, queue.ErrClosed) {
				return
			}
			w.log.Error("cannot lease from queue", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		w.process(work, m)
	}
}
