package relay

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipRate limits the transactions per client network on the MX listener: a
// token bucket (golang.org/x/time/rate) per limitKey, refilled at
// perMinute a minute with a burst of perMinute.
type ipRate struct {
	perMinute int
	every     rate.Limit

	mu sync.Mutex
	m  map[string]*ipBucket
}

type ipBucket struct {
	lim  *rate.Limiter
	last time.Time
}

// maxIPBuckets bounds the limiter's memory; buckets idle long enough to
// be full again are dropped first.
const maxIPBuckets = 100_000

func newIPRate(perMinute int) *ipRate {
	return &ipRate{perMinute: perMinute, every: rate.Every(time.Minute / time.Duration(perMinute)), m: map[string]*ipBucket{}}
}

// allow takes one token for key, reporting false when there is none.
func (r *ipRate) allow(key string) bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.m[key]
	if b == nil {
		if len(r.m) >= maxIPBuckets {
			for k, old := range r.m {
				if now.Sub(old.last) > time.Minute {
					delete(r.m, k)
				}
			}
		}
		b = &ipBucket{lim: rate.NewLimiter(r.every, r.perMinute)}
		r.m[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}
