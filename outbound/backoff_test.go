package outbound

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	sched := []time.Duration{5 * time.Minute, 10 * time.Minute, time.Hour}
	half := func() float64 { return 0.5 }
	zero := func() float64 { return 0 }
	top := func() float64 { return 0.999999 }
	tests := []struct {
		name    string
		sched   []time.Duration
		attempt int
		jitter  float64
		rnd     func() float64
		want    time.Duration
	}{
		{"first", sched, 1, 0, nil, 5 * time.Minute},
		{"second", sched, 2, 0, nil, 10 * time.Minute},
		{"last", sched, 3, 0, nil, time.Hour},
		{"last repeats", sched, 10, 0, nil, time.Hour},
		{"zero attempt counts as one", sched, 0, 0, nil, 5 * time.Minute},
		{"negative attempt", sched, -3, 0, nil, 5 * time.Minute},
		{"default schedule", nil, 7, 0, nil, 4 * time.Hour},
		{"default schedule repeats", nil, 100, 0, nil, 4 * time.Hour},
		{"jitter middle is exact", sched, 2, 0.1, half, 10 * time.Minute},
		{"jitter low end", sched, 2, 0.1, zero, 9 * time.Minute},
		{"jitter high end", sched, 2, 0.1, top, 11*time.Minute - 120*time.Microsecond},
		{"jitter without rnd", sched, 2, 0.1, nil, 10 * time.Minute},
		{"jitter clamped to half", sched, 1, 5, zero, 150 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Backoff(tt.sched, tt.attempt, tt.jitter, tt.rnd)
			if diff := got - tt.want; diff > time.Millisecond || diff < -time.Millisecond {
				t.Fatalf("Backoff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextAttemptCappedAtExpiry(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	sched := []time.Duration{time.Hour}
	if got := nextAttempt(now, now.Add(10*time.Minute), sched, 1, 0, nil); !got.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("next = %v, want the expiry", got)
	}
	if got := nextAttempt(now, now.Add(2*time.Hour), sched, 1, 0, nil); !got.Equal(now.Add(time.Hour)) {
		t.Fatalf("next = %v, want +1h", got)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{5 * time.Minute, "5m"},
		{90 * time.Minute, "1h30m"},
		{4 * time.Hour, "4h"},
		{120 * time.Hour, "5d"},
		{49*time.Hour + 30*time.Second, "2d1h30s"},
		{-5 * time.Minute, "-5m"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestScheduleString(t *testing.T) {
	tests := []struct {
		sched    []time.Duration
		lifetime time.Duration
		want     string
	}{
		{nil, DefaultQueueLifetime, "after 5m, 10m, 20m, 40m, 1h, 2h, 4h, then every 4h, for up to 5d"},
		{[]time.Duration{time.Minute}, 0, "after 1m, then every 1m"},
		{[]time.Duration{30 * time.Second, 90 * time.Minute}, 36 * time.Hour, "after 30s, 1h30m, then every 1h30m, for up to 1d12h"},
	}
	for _, tt := range tests {
		if got := ScheduleString(tt.sched, tt.lifetime); got != tt.want {
			t.Errorf("ScheduleString = %q, want %q", got, tt.want)
		}
	}
}
