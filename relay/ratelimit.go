package relay

import (
	"strings"
	"sync"
	"time"
)

// rateLimiter limits how many recipients each authenticated user may
// submit per hour: a token bucket per user that holds at most perHour
// tokens and refills at perHour per hour. It bounds the damage a stolen
// password can do before anyone notices; an over-limit RCPT gets
// 450 4.7.1, so a legitimate burst is only delayed, not lost.
type rateLimiter struct {
	perHour float64
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are dropped first.
const maxBuckets = 100_000

func newRateLimiter(perHour int, now func() time.Time) *rateLimiter {
	if perHour <= 0 {
		return nil
	}
	return &rateLimiter{perHour: float64(perHour), now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from user's bucket, reporting false when it is
// empty. A nil limiter allows everything.
func (r *rateLimiter) allow(user string) bool {
	if r == nil {
		return true
	}
	user = strings.ToLower(user)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[user]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			r.pruneLocked(now)
		}
		b = &bucket{tokens: r.perHour, last: now}
		r.buckets[user] = b
	}
	b.tokens += now.Sub(b.last).Hours() * r.perHour
	if b.tokens > r.perHour {
		b.tokens = r.perHour
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneLocked drops buckets that have refilled completely: forgetting them
// changes nothing.
func (r *rateLimiter) pruneLocked(now time.Time) {
	for u, b := range r.buckets {
		if b.tokens+now.Sub(b.last).Hours()*r.perHour >= r.perHour {
			delete(r.buckets, u)
		}
	}
}
