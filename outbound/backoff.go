package outbound

import (
	"fmt"
	"strings"
	"time"
)

// Defaults for the retry policy. RFC 5321 §4.5.4.1 asks for a retry interval
// of at least 30 minutes and a give-up time of at least 4-5 days; the first
// retries here are shorter (greylisting usually clears within minutes) and
// the interval grows to that pace.
const (
	DefaultQueueLifetime = 120 * time.Hour
	DefaultDelayWarning  = 4 * time.Hour
	DefaultJitter        = 0.1
)

// DefaultRetrySchedule returns the default delays between attempts: 5m, 10m,
// 20m, 40m, 1h, 2h, 4h, then 4h again until the queue lifetime runs out.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{
		5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
		time.Hour, 2 * time.Hour, 4 * time.Hour,
	}
}

// Backoff returns the delay before the next attempt of a message that has
// made attempt attempts so far (1 after the first). The delay is
// schedule[attempt-1]; past the end of the schedule its last entry repeats.
// An attempt below 1 counts as 1. An empty schedule uses
// DefaultRetrySchedule.
//
// jitter spreads the delay uniformly over ±jitter of its value (0.1 = ±10%)
// so that messages deferred together do not come back together; rnd returns
// a number in [0, 1) and may be nil (no jitter). jitter is clamped to
// [0, 0.5], so a retry never comes sooner than half its scheduled delay.
func Backoff(schedule []time.Duration, attempt int, jitter float64, rnd func() float64) time.Duration {
	if len(schedule) == 0 {
		schedule = DefaultRetrySchedule()
	}
	i := min(max(attempt, 1), len(schedule)) - 1
	d := schedule[i]
	if rnd == nil || jitter <= 0 {
		return d
	}
	jitter = min(jitter, 0.5)
	f := 1 + jitter*(2*rnd()-1)
	return time.Duration(float64(d) * f)
}

// ScheduleString describes a retry schedule and lifetime in words, for logs,
// the README and reports: "after 5m, 10m, 20m, 40m, 1h, 2h, 4h, then every
// 4h, for up to 5d". It is generated from the schedule in use, so texts never
// drift from what the worker does.
func ScheduleString(schedule []time.Duration, lifetime time.Duration) string {
	if len(schedule) == 0 {
		schedule = DefaultRetrySchedule()
	}
	parts := make([]string, len(schedule))
	for i, d := range schedule {
		parts[i] = FormatDuration(d)
	}
	s := "after " + strings.Join(parts, ", ") + ", then every " + FormatDuration(schedule[len(schedule)-1])
	if lifetime > 0 {
		s += ", for up to " + FormatDuration(lifetime)
	}
	return s
}

// FormatDuration renders d compactly with days, hours, minutes and seconds,
// leaving out zero parts: 120h → "5d", 90m → "1h30m", 0 → "0s". Sub-second
// remainders are dropped.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	d = d.Truncate(time.Second)
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

// nextAttempt returns when a message that has made attempts attempts should
// be tried again, never later than its expiry (so that it expires on time).
func nextAttempt(now, expiry time.Time, schedule []time.Duration, attempts int, jitter float64, rnd func() float64) time.Time {
	at := now.Add(Backoff(schedule, attempts, jitter, rnd))
	if !expiry.IsZero() && at.After(expiry) {
		at = expiry
	}
	return at
}
