package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// drain leases and completes everything queued, so a long benchmark does
// not grow the spool (and its index) without bound.
func drain(ctx context.Context, q queue.Queue) {
	for {
		m, err := q.Lease(ctx)
		if err != nil {
			return
		}
		q.Complete(context.Background(), m)
	}
}

// BenchmarkSubmit measures whole submissions over loopback: STARTTLS, AUTH
// PLAIN once per connection, then MAIL/RCPT/DATA of a 10 KiB message to a
// real spool (fsync'd) until 250, from parallel clients with persistent
// connections. Reports msgs/s.
func BenchmarkSubmit(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			benchSubmit(b, size)
		})
	}
}

func benchSubmit(b *testing.B, size int) {
	e := newEnv(b, func(o *Options) { o.MaxMessageBytes = 32 << 20; o.MaxRecipients = 100 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go drain(ctx, e.q)
	body := message(alice, "r@example.net", "") + strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78)
	b.SetBytes(int64(len(body)))
	b.SetParallelism(4)
	var n atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := smtp.DialStartTLS(e.addr587, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := c.SendMail(alice, []string{"r@example.net"}, strings.NewReader(body)); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
}
