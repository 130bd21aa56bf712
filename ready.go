package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// readyCheck is one part that /readyz asks: "queue", "bounce_store",
// "identity". check must be cheap (it runs on every probe) and real: the
// spool and the Maildir create, fsync and remove a file and look at the
// free space; it returns nil when the part can do its work now.
type readyCheck struct {
	name  string
	check func(context.Context) error
}

// degraded is a check's error that names a part working less well than it
// should without making the process unready: /readyz still answers 200
// and lists it under "degraded" (a gateway down while the queue holds the
// mail; ready_gateway.go).
type degraded struct{ msg string }

func (d *degraded) Error() string { return d.msg }

// readyTimeout bounds each probe's checks: a part that does not answer in
// time is not ready.
const readyTimeout = 2 * time.Second

// readyHandler answers /readyz: 200 "ready" when every check passes, else
// 503 with a JSON body naming each part that is not ready and why, e.g.
//
//	{"ready":false,"not_ready":{"queue":"spool: 0 bytes free, below 1048576"}}
//
// A check that fails with a *degraded error is named under "degraded" and
// leaves the answer 200: {"ready":true,"degraded":{"gateways":"…"}}.
//
// Nothing is cached: a part that recovers is ready at the next probe, with
// no restart. The checks run in parallel, each within timeout.
func readyHandler(checks []readyCheck, draining func() bool, timeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		notReady, slow := map[string]string{}, map[string]string{}
		if draining() {
			notReady["draining"] = "shutting down"
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan error, 1)
				go func() { done <- c.check(ctx) }()
				var err error
				select {
				case err = <-done:
				case <-ctx.Done():
					err = ctx.Err() // a check stuck in a syscall is not waited for
				}
				var d *degraded
				if err != nil {
					mu.Lock()
					if errors.As(err, &d) {
						slow[c.name] = d.msg
					} else {
						notReady[c.name] = err.Error()
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(notReady) == 0 && len(slow) == 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ready\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if len(notReady) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(struct {
			Ready    bool              `json:"ready"`
			NotReady map[string]string `json:"not_ready,omitempty"`
			Degraded map[string]string `json:"degraded,omitempty"`
		}{len(notReady) == 0, notReady, slow})
	}
}
