package outbound

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Failover (RELAY_GATEWAY, a RELAY_ROUTES value): a list of gateways is
// tried in order within one attempt. A gateway that is down (hop.deliver's
// down: unreachable, 4xx or 5xx before MAIL, token endpoint down, SES
// throttling) is skipped for a back-off that starts at
// Options.GatewayBackoff and doubles with each consecutive failure, capped
// at maxGatewayBackoff (or GatewayBackoff when that is larger): 1m, 2m, 4m,
// 8m, 15m, 15m… One success ends its back-off and resets the doubling. So
// the first gateway is used again as soon as its back-off is over and it
// works. A failure doubles the back-off only when the attempt that saw it
// looked at the gateway after its last recorded failure (hopState.gen):
// attempts in flight together that find it down together are one outage,
// not one doubling each (Concurrency 16 had a one-second outage skip the
// gateway for the 15-minute cap).
//
// Which gateways one attempt tries:
//  1. every gateway not backing off, in list order, until one is not down;
//     a gateway whose back-off is over is tried again by one attempt at a
//     time (hopState.trying, claimed right before the try and released
//     with its result): the others treat it as backing off meanwhile, so
//     a gateway that accepts TCP and never greets holds one delivery for
//     the greeting timeout, not every delivery slot at the end of each
//     back-off;
//  2. when all of those were down, or every gateway was backing off when
//     the attempt started, the one among those that were backing off whose
//     last failure is the oldest (least recently failed), once. Back-off
//     never makes an attempt deliver nothing: with every gateway backing
//     off, one is still tried, and the one that had the most time to
//     recover. Trying only one bounds the attempt's time (each unreachable
//     gateway can take Timeouts.Connect).
//
// When every gateway tried was down, the recipients stay pending with the
// last gateway's reply (the retry schedule applies, never a bounce). A
// gateway that is not down decides: its 5xx for a recipient is final and
// its 4xx after MAIL leaves the recipient pending (RFC 5321 §4.2.5); neither
// fails over, since the message may have reached the gateway for others.

// maxGatewayBackoff caps the doubling back-off.
const maxGatewayBackoff = 15 * time.Minute

// gatewayList is one failover list. Its state is shared by every delivery
// in flight and guarded by mu, which is never held across a delivery.
type gatewayList struct {
	w    *Worker
	key  string // the route key: "" for the main list, else the sender domain
	hops []hop

	mu     sync.Mutex
	state  []hopState // by index in hops
	claims uint64     // the last claim handed out (hopState.trying)
}

// hopState is one gateway's health.
type hopState struct {
	failures  int       // consecutive attempts that found it down
	until     time.Time // skipped before this
	lastFail  time.Time // last time it was down
	downSince time.Time // first failure of the current run; zero when up
	lastErr   string    // the reply of the last failure, recordable (no secrets: what the gateway or the network said)
	gen       uint64    // counts recorded failures and successes: which attempts saw the latest state
	trying    uint64    // the claim of the one attempt trying it again after its back-off; 0 for none
}

// listPlan is what one attempt tries (order).
type listPlan struct {
	first []int    // not backing off, in list order
	probe int      // the one to try when all of first are down; -1 for none
	gens  []uint64 // each gateway's gen as the attempt saw it
}

func (w *Worker) newGatewayList(key string, cfgs []GatewayConfig) *gatewayList {
	l := &gatewayList{w: w, key: key, state: make([]hopState, len(cfgs))}
	for _, c := range cfgs {
		l.hops = append(l.hops, w.newHop(c))
	}
	return l
}

// order returns the plan of an attempt starting at now (see above). A
// gateway whose back-off is over and that another attempt is trying again
// counts as backing off; with nothing else to try, it is the probe:
// back-off never leaves an attempt nothing.
func (l *gatewayList) order(now time.Time) listPlan {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := listPlan{probe: -1, gens: make([]uint64, len(l.state))}
	busy := -1 // the least recently failed of those another attempt is trying
	older := func(i, j int) bool { return j < 0 || l.state[i].lastFail.Before(l.state[j].lastFail) }
	for i := range l.state {
		s := &l.state[i]
		p.gens[i] = s.gen
		switch {
		case !now.Before(s.until) && s.trying == 0:
			p.first = append(p.first, i)
		case !now.Before(s.until):
			if older(i, busy) {
				busy = i
			}
		case older(i, p.probe):
			p.probe = i
		}
	}
	if p.probe < 0 && len(p.first) == 0 {
		p.probe = busy
	}
	return p
}

// claim is taken by an attempt right before it tries gateway i of its
// first list: 0 and true for a gateway that is up, a claim and true for
// one tried again after its back-off, false when another attempt holds
// that claim (the attempt skips it).
func (l *gatewayList) claim(i int) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.state[i]
	switch {
	case s.failures == 0:
		return 0, true
	case s.trying != 0:
		return 0, false
	}
	l.claims++
	s.trying = l.claims
	return s.trying, true
}

// release ends claim c on gateway i, if it still holds.
func (l *gatewayList) release(i int, c uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c != 0 && l.state[i].trying == c {
		l.state[i].trying = 0
	}
}

// deliver sends m to the recipients idx through the list (see above).
func (l *gatewayList) deliver(ctx context.Context, m *queue.Message, idx []int) map[int]result {
	p := l.order(l.w.o.Now())
	first, try := p.first, p.first
	if p.probe >= 0 {
		try = append(slices.Clip(try), p.probe)
	}
	var res map[int]result
	for n, i := range try {
		if n == len(first) && n > 0 {
			l.w.log.Warn("every available gateway is down, trying one that is backing off",
				"id", m.Envelope.ID, "gateway", l.hops[i].name())
		}
		var c uint64
		if n < len(first) {
			var ok bool
			if c, ok = l.claim(i); !ok {
				continue // another attempt is trying it again after its back-off
			}
		}
		var done bool
		if res, done = l.try(ctx, m, idx, i, c, p.gens[i]); done {
			return res
		}
		if n+1 < len(try) {
			l.w.log.Warn("gateway down, failing over", "id", m.Envelope.ID,
				"gateway", l.hops[i].name(), "next", l.hops[try[n+1]].name(), "reply", l.lastErr(i))
			l.w.gatewayEvent(GatewayEvent{Gateway: l.hops[i].name(), Kind: GatewayFailover})
		} else {
			l.w.log.Warn("gateway down, no other gateway to try; recipients stay pending", "id", m.Envelope.ID,
				"gateway", l.hops[i].name(), "reply", l.lastErr(i))
		}
	}
	return res
}

// try delivers through gateway i, holding claim c (0 for none), and
// records what it learnt: done when the list must not go on (a verdict,
// or shutdown).
func (l *gatewayList) try(ctx context.Context, m *queue.Message, idx []int, i int, c, gen uint64) (map[int]result, bool) {
	defer l.release(i, c)
	start := time.Now()
	res, down := l.hops[i].deliver(ctx, m, idx)
	l.observe(i, res, down, time.Since(start))
	switch {
	case ctx.Err() != nil:
		return res, true // shutting down: nothing learnt about the gateway
	case !down:
		l.up(i)
		return res, true
	}
	l.down(i, res, idx, gen)
	return res, false
}

// up records a working gateway: its back-off ends.
func (l *gatewayList) up(i int) {
	l.mu.Lock()
	l.state[i] = hopState{gen: l.state[i].gen + 1}
	l.mu.Unlock()
}

// down records a failure of gateway i, seen by an attempt that found the
// gateway at gen, and starts or doubles its back-off. A failure seen by an
// attempt that looked before another failure was recorded is the same
// outage: it does not double, and the back-off never shrinks.
func (l *gatewayList) down(i int, res map[int]result, idx []int, gen uint64) {
	now := l.w.o.Now()
	why := ""
	if len(idx) > 0 {
		// Shown by /readyz and logged at each failover: bounded and clean
		// as a recipient's recorded reply (a greeting can be 32 KiB of
		// terminal escapes).
		why = recordable(res[idx[0]].reply).String()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.state[i]
	if gen == s.gen || s.failures == 0 {
		s.failures++
	}
	s.gen++
	if u := now.Add(backoffFor(l.w.o.GatewayBackoff, s.failures)); u.After(s.until) {
		s.until = u
	}
	s.lastFail = now
	if s.downSince.IsZero() {
		s.downSince = now
	}
	s.lastErr = why
}

func (l *gatewayList) lastErr(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state[i].lastErr
}

// backoffFor is the back-off after n consecutive failures: base doubled
// n-1 times, capped at maxGatewayBackoff or base, whichever is larger.
func backoffFor(base time.Duration, n int) time.Duration {
	limit := max(base, maxGatewayBackoff)
	d := base
	for k := 1; k < n && d < limit; k++ {
		d *= 2
	}
	return min(d, limit)
}

// GatewayStatus is one gateway's health as the list sees it.
type GatewayStatus struct {
	Gateway string
	Route   string // "" for RELAY_GATEWAY's list, else the sender domain
	// DownSince is when the gateway started failing every attempt; zero
	// while it works (or was never tried).
	DownSince time.Time
	// LastError is the reply of its last failure.
	LastError string
}

func (l *gatewayList) status() []GatewayStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]GatewayStatus, len(l.hops))
	for i, h := range l.hops {
		out[i] = GatewayStatus{Gateway: h.name(), Route: l.key, DownSince: l.state[i].downSince, LastError: l.state[i].lastErr}
	}
	return out
}

// close ends the idle connections of the list's SMTP gateways.
func (l *gatewayList) close() {
	for _, h := range l.hops {
		if c, ok := h.(interface{ close() }); ok {
			c.close()
		}
	}
}
