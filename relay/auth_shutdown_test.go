package relay

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// hangingAuth is an identity backend that does not answer: each check
// waits for its context, or gives up after a while and records that nobody
// cancelled it.
type hangingAuth struct {
	entered, cancelled, uncancelled atomic.Int64
}

func (h *hangingAuth) Password(ctx context.Context, _, _, _ string) (*auth.Identity, error) {
	h.entered.Add(1)
	select {
	case <-ctx.Done():
		h.cancelled.Add(1)
	case <-time.After(10 * time.Second):
		h.uncancelled.Add(1)
	}
	return nil, fmt.Errorf("%w: no answer", auth.ErrUnavailable)
}
func (h *hangingAuth) Token(context.Context, string, string, string) (*auth.Identity, error) {
	return nil, auth.ErrUnavailable
}
func (h *hangingAuth) HasPassword() bool { return true }
func (h *hangingAuth) HasToken() bool    { return false }

// TestShutdownCancelsSlowAuth (issue 8 item 15): the AUTH check runs under
// a context that the server cancels at shutdown, so a hanging directory
// does not hold the shutdown for its whole timeout.
func TestShutdownCancelsSlowAuth(t *testing.T) {
	h := &hangingAuth{}
	e := newEnv(t, func(o *Options) { o.Auth = h })
	c := e.dial()
	c.ehlo()
	c.starttls()
	c.ehlo()
	if _, err := fmt.Fprintf(c.conn, "AUTH PLAIN %s\r\n", plain(alice, alicePW)); err != nil {
		t.Fatal(err)
	}
	for h.entered.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	e.srv.Shutdown(ctx)
	for h.cancelled.Load()+h.uncancelled.Load() == 0 { // the check's own 10 s bound ends this wait
		time.Sleep(5 * time.Millisecond)
	}
	if h.cancelled.Load() != 1 || h.uncancelled.Load() != 0 {
		t.Fatalf("the AUTH check was not cancelled by the shutdown (cancelled %d, ran out %d)",
			h.cancelled.Load(), h.uncancelled.Load())
	}
}
