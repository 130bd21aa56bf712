package testutil

import (
	"testing"
	"time"
)

// ReturnsWithin runs f in a goroutine and fails the test when it has not
// returned after d: a loop over remote bytes that does not progress is a
// finding, not a timeout to raise (TESTING.md §3).
func ReturnsWithin(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v (a loop that does not progress?)", what, d)
	}
}
