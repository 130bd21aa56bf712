package relay

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/internal/testutil"
)

// TestShutdownRightAfterServe: Shutdown called right after Serve returns,
// before the goroutine that runs go-smtp's Serve may have started, still
// closes the listener and returns. go-smtp closes only the listeners its
// Serve registered, so a late goroutine went on to Accept on an open
// listener forever, and Shutdown waited for it (a CI run hung 15 minutes
// in TestConnTopPublishedUnderLock's cleanup).
func TestShutdownRightAfterServe(t *testing.T) {
	cert, err := SelfSigned("relay.test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		s, err := New(Options{
			Hostname:  "relay.test",
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			Auth:      auth.New(auth.Options{}),
			Queue:     failingQueue{},
		})
		if err != nil {
			t.Fatal(err)
		}
		nl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Serve(nl, i%2 == 1)
		testutil.ReturnsWithin(t, 10*time.Second, "Shutdown right after Serve", func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		})
		if c, err := net.DialTimeout("tcp", nl.Addr().String(), time.Second); err == nil {
			c.Close()
			t.Fatalf("run %d: the listener still accepts after Shutdown", i)
		}
	}
}
