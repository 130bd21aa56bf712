package relay

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	r := newRateLimiter(3, func() time.Time { return now })
	for i := range 3 {
		if !r.allow("Alice@example.org") {
			t.Fatalf("recipient %d refused within the limit", i+1)
		}
	}
	if r.allow("alice@EXAMPLE.org") {
		t.Fatal("fourth recipient in the hour allowed (user names are case-insensitive)")
	}
	if !r.allow("bob@example.org") {
		t.Fatal("another user is limited too")
	}
	now = now.Add(20 * time.Minute) // a third of an hour: one token back
	if !r.allow("alice@example.org") || r.allow("alice@example.org") {
		t.Fatal("refill is not perHour per hour")
	}
	var off *rateLimiter = newRateLimiter(0, time.Now)
	if !off.allow("x") {
		t.Fatal("a disabled limiter refused")
	}
}

func TestRateLimitWire(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRecipientsPerHour = 2 })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<a@example.net>")
	c.must(250, "", "RCPT TO:<b@example.net>")
	c.must(450, "4.7.1", "RCPT TO:<c@example.net>")
	if code, _ := c.data(message(alice, "a@example.net", "")); code != 250 {
		t.Fatal(code)
	}
	// Another user is not affected.
	c2 := e.authed(bob, bobPW)
	c2.must(250, "", "MAIL FROM:<%s>", bob)
	c2.must(250, "", "RCPT TO:<a@example.net>")
}
