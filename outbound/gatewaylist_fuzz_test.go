package outbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Modes of a modeHop: what the gateway does with the next attempt.
const (
	hopUp     = iota // takes the message: every recipient relayed
	hopDown          // unreachable, 421 greeting: down
	hopReject        // a 5xx for every other recipient, the rest relayed
	hopDefer         // a 4xx after MAIL (a 421 mid-transaction): pending, not down
	hopModes
)

// modeHop is a gateway whose behaviour the fuzzer sets; slow advances the
// fake clock during the attempt (a gateway that takes its time).
type modeHop struct {
	n     string
	mode  int
	slow  time.Duration
	clock *fakeClock
	calls *[]int // the list's call log, by hop index
	index int
}

func (m *modeHop) name() string { return m.n }

func (m *modeHop) deliver(_ context.Context, _ *queue.Message, idx []int) (map[int]result, bool) {
	*m.calls = append(*m.calls, m.index)
	m.clock.Advance(m.slow)
	res := map[int]result{}
	for k, i := range idx {
		switch {
		case m.mode == hopDown:
			res[i] = result{status: queue.StatusPending, reply: replyNotAttempted()}
		case m.mode == hopDefer:
			res[i] = result{status: queue.StatusPending, reply: &queue.Reply{Code: 421, Enhanced: "4.3.2"}}
		case m.mode == hopReject && k%2 == 0:
			res[i] = result{status: queue.StatusFailed, reply: &queue.Reply{Code: 550, Enhanced: "5.1.1"}}
		default:
			res[i] = result{status: queue.StatusRelayed}
		}
	}
	return res, m.mode == hopDown
}

// FuzzGatewayList drives a list of three gateways through a sequence of
// operations (a gateway's mode or slowness set, a delivery of 1–4
// recipients, the clock advanced) and checks after every step:
//   - one attempt tries each gateway at most once; once a gateway was not
//     down (it gave a verdict), no other is tried in that attempt;
//   - gateways not backing off are tried first, in list order, and at most
//     one backing-off gateway is tried, only after all of those were down
//     (or when every gateway was backing off);
//   - a recipient fails only with a 5xx from the gateway that decided, and
//     with every tried gateway down all stay pending;
//   - a gateway's back-off never shrinks while it stays down, never
//     exceeds max(GatewayBackoff, maxGatewayBackoff) from its last failure,
//     and ends with a success.
func FuzzGatewayList(f *testing.F) {
	f.Add([]byte{3, 3, 3})
	f.Add([]byte{0 | 1<<5, 3, 4 | 3<<3, 3, 1 | 1<<5, 3, 3, 2 | 1<<5, 3, 4 | 31<<3, 3})
	f.Add([]byte{0 | 3<<5, 3, 0 | 2<<5, 3, 1 | 1<<5, 2 | 1<<5, 3, 3, 5 | 1<<3, 3, 4 | 20<<3, 3})
	f.Add([]byte{5 | 2<<3, 0 | 1<<5, 3, 3, 3, 3, 4 | 1<<3, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		w := &Worker{o: Options{GatewayBackoff: time.Minute}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		clock := newClock()
		w.o.Now = clock.Now
		var calls []int
		hops := make([]*modeHop, 3)
		l := &gatewayList{w: w, state: make([]hopState, 3)}
		for i := range hops {
			hops[i] = &modeHop{n: fmt.Sprint("gw", i), clock: clock, calls: &calls, index: i}
			l.hops = append(l.hops, hops[i])
		}
		limit := max(w.o.GatewayBackoff, maxGatewayBackoff)
		prev := make([]hopState, 3)
		for step, op := range ops {
			switch op & 7 {
			case 0, 1, 2: // set gateway op&7's mode
				hops[op&7].mode = int(op>>5) % hopModes
			case 4: // time passes
				clock.Advance(time.Duration(op>>3) * 10 * time.Second)
			case 5: // a gateway becomes slow (or fast)
				hops[int(op>>3)%3].slow = time.Duration(op>>5) * 20 * time.Second
			default: // deliver
				now := clock.Now()
				l.mu.Lock()
				before := append([]hopState(nil), l.state...)
				l.mu.Unlock()
				n := 1 + int(op>>3)%4
				env := &queue.Envelope{ID: fmt.Sprint("m", step)}
				idx := make([]int, n)
				for i := range n {
					env.Recipients = append(env.Recipients, queue.Recipient{Addr: fmt.Sprintf("r%d@example.net", i)})
					idx[i] = i
				}
				calls = calls[:0]
				res := l.deliver(context.Background(), &queue.Message{Envelope: env}, idx)
				if err := checkListAttempt(before, now, calls, hops, res, idx); err != nil {
					t.Fatalf("step %d (ops %v): %v", step, ops[:step+1], err)
				}
			}
			l.mu.Lock()
			for i, s := range l.state {
				p := prev[i]
				if s.failures > 0 && s.until.Sub(s.lastFail) > limit {
					t.Fatalf("step %d: gw%d backs off %v after its last failure, over %v", step, i, s.until.Sub(s.lastFail), limit)
				}
				if s.failures > 0 && p.failures > 0 && s.until.Before(p.until) {
					t.Fatalf("step %d: gw%d's back-off shrank while down: %v → %v", step, i, p.until, s.until)
				}
				if s.failures == 0 && (!s.until.IsZero() || !s.downSince.IsZero()) {
					t.Fatalf("step %d: gw%d up with state %+v", step, i, s)
				}
			}
			copy(prev, l.state)
			l.mu.Unlock()
		}
	})
}

// checkListAttempt checks one attempt of FuzzGatewayList (see there).
func checkListAttempt(before []hopState, now time.Time, calls []int, hops []*modeHop, res map[int]result, idx []int) error {
	if len(calls) == 0 {
		return fmt.Errorf("no gateway tried")
	}
	seen := map[int]bool{}
	backingOff := 0
	var free []int
	for i, s := range before {
		if !now.Before(s.until) {
			free = append(free, i)
		}
	}
	for n, i := range calls {
		if seen[i] {
			return fmt.Errorf("gw%d tried twice in one attempt: %v", i, calls)
		}
		seen[i] = true
		if n < len(calls)-1 && hops[i].mode != hopDown {
			return fmt.Errorf("gw%d gave a verdict and the list went on: %v", i, calls)
		}
		if now.Before(before[i].until) {
			backingOff++
			if n != len(calls)-1 || n != len(free) {
				return fmt.Errorf("backing-off gw%d tried at %d, before the free ones %v were all tried: %v", i, n, free, calls)
			}
		} else if n >= len(free) || free[n] != i {
			return fmt.Errorf("free gateways %v not tried in list order: %v", free, calls)
		}
	}
	if backingOff > 1 {
		return fmt.Errorf("%d backing-off gateways tried in one attempt: %v", backingOff, calls)
	}
	last := hops[calls[len(calls)-1]]
	for _, i := range idx {
		r, ok := res[i]
		if !ok {
			return fmt.Errorf("recipient %d got no result", i)
		}
		if r.status == queue.StatusFailed && (last.mode != hopReject || r.reply == nil || r.reply.Code/100 != 5) {
			return fmt.Errorf("recipient %d failed without a 5xx from the deciding gateway (mode %d): %+v", i, last.mode, r)
		}
		if last.mode == hopDown && r.status != queue.StatusPending {
			return fmt.Errorf("every tried gateway down, recipient %d %s", i, r.status)
		}
	}
	return nil
}

// ctxHop is a gateway whose mode changes under concurrent deliveries; each
// attempt's tries are logged in the attempt's own log (from its context).
type ctxHop struct {
	n     string
	index int
	mode  atomic.Int32
}

type tryLog struct{ tries, modes []int }

type tryLogKey struct{}

func (c *ctxHop) name() string { return c.n }

func (c *ctxHop) deliver(ctx context.Context, _ *queue.Message, idx []int) (map[int]result, bool) {
	mode := int(c.mode.Load())
	lg := ctx.Value(tryLogKey{}).(*tryLog)
	lg.tries, lg.modes = append(lg.tries, c.index), append(lg.modes, mode)
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	res := map[int]result{}
	for k, i := range idx {
		switch {
		case mode == hopDown:
			res[i] = result{status: queue.StatusPending, reply: replyNotAttempted()}
		case mode == hopReject && k%2 == 0:
			res[i] = result{status: queue.StatusFailed, reply: &queue.Reply{Code: 550, Enhanced: "5.1.1"}}
		default:
			res[i] = result{status: queue.StatusRelayed}
		}
	}
	return res, mode == hopDown
}

// TestGatewayListConcurrentStress: 16 goroutines deliver through a list of
// three gateways whose modes flip and whose clock moves meanwhile (run
// with -race). Each attempt: no gateway twice, none after a verdict, a
// failure only with the deciding gateway's 5xx; at the end no claim is
// left held and every back-off is within its bound.
func TestGatewayListConcurrentStress(t *testing.T) {
	w := &Worker{o: Options{GatewayBackoff: time.Minute}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	clock := newClock()
	w.o.Now = clock.Now
	hops := make([]*ctxHop, 3)
	l := &gatewayList{w: w, state: make([]hopState, 3)}
	for i := range hops {
		hops[i] = &ctxHop{n: fmt.Sprint("gw", i), index: i}
		l.hops = append(l.hops, hops[i])
	}
	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			hops[rand.IntN(3)].mode.Store(int32(rand.IntN(hopModes)))
			clock.Advance(time.Duration(rand.IntN(40)) * time.Second)
			time.Sleep(50 * time.Microsecond)
		}
	})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for k := range 150 {
				lg := &tryLog{}
				ctx := context.WithValue(context.Background(), tryLogKey{}, lg)
				env := &queue.Envelope{ID: fmt.Sprint(g, "-", k), Recipients: []queue.Recipient{{Addr: "a@x.example"}, {Addr: "b@x.example"}}}
				res := l.deliver(ctx, &queue.Message{Envelope: env}, []int{0, 1})
				seen := map[int]bool{}
				for n, i := range lg.tries {
					if seen[i] || n < len(lg.tries)-1 && lg.modes[n] != hopDown {
						t.Errorf("attempt %s tried %v (modes %v)", env.ID, lg.tries, lg.modes)
						return
					}
					seen[i] = true
				}
				for i, r := range res {
					if r.status == queue.StatusFailed && (len(lg.modes) == 0 || lg.modes[len(lg.modes)-1] != hopReject) {
						t.Errorf("attempt %s: recipient %d failed, modes %v", env.ID, i, lg.modes)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	flips.Wait()
	limit := max(w.o.GatewayBackoff, maxGatewayBackoff)
	for i, s := range l.state {
		if s.trying != 0 || s.failures > 0 && s.until.Sub(s.lastFail) > limit {
			t.Errorf("gw%d left %+v", i, s)
		}
	}
}
