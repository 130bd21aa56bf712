package outbound

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackTokenEndpointRedirectNotFollowed: a token endpoint that
// redirects is refused, not followed: a 307 or 308 makes Go's HTTP client
// post the same body (the client secret, or the signed assertion) again to
// wherever the Location says, which may be plain http to any host. The
// error names the status; nothing reaches the redirect's target.
func TestAttackTokenEndpointRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var got atomic.Int64
			var secretSeen atomic.Bool
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				b, _ := io.ReadAll(r.Body)
				if strings.Contains(string(b), testClientSecret) || strings.Contains(r.URL.String(), testClientSecret) {
					secretSeen.Store(true)
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`)
			}))
			defer target.Close()
			e := newTokenEndpoint(t)
			e.setFail(func(w http.ResponseWriter) {
				w.Header().Set("Location", target.URL+"/collect?s="+testClientSecret)
				w.WriteHeader(status)
			})
			ts := e.clientCredentials(5*time.Second, nil)
			tok, err := ts.Token(context.Background())
			if got.Load() != 0 || secretSeen.Load() {
				t.Errorf("the redirect was followed: %d requests to its target, secret seen %v", got.Load(), secretSeen.Load())
			}
			if err == nil {
				t.Fatalf("token %q from a redirect", tok)
			}
			if want := "the token endpoint answered HTTP " + strconv.Itoa(status); !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q, want it to end %q", err, want)
			}
			noSecret(t, err.Error())
		})
	}
}
