package outbound

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackSESLostResponseNoFailover: SES read the whole SendEmail
// request and the connection dropped before its response (SES may well
// have sent the message: the API's "250 after the dot never read"). The
// next gateway of the list must not be tried in the same attempt: that is
// a duplicate every time a response is lost. The recipients stay pending.
// (ses.go: send traces whether a request was written whole and not
// answered; such a call is not down.)
func TestAttackSESLostResponseNoFailover(t *testing.T) {
	var took atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		took.Add(1)
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	defer srv.Close()
	b := newScriptServer(t)
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{
			{URL: "ses://us-east-1", SES: sesClientAt(srv.URL, 1, nil), SESRegion: "us-east-1"},
			plainGateway("b.test:25"),
		}
	})
	h.dialMap["b.test:25"] = b.Addr
	h.enqueue(nil, bob)
	r := rcpt(t, h.attempt(), bob)
	if took.Load() != 1 {
		t.Fatalf("SES got %d requests", took.Load())
	}
	if b.Conns() != 0 || r.Status != queue.StatusPending {
		t.Errorf("after SES took the request and the response was lost: b got %d connections, %s %v; want none, pending",
			b.Conns(), r.Status, r.Reply)
	}
}
