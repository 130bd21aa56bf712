package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/outbound"
)

// gatewayDownFor is how long a gateway must have failed every attempt
// before /readyz names it: shorter outages are what failover and the retry
// schedule are for, and would make the probe flap.
const gatewayDownFor = 5 * time.Minute

// gatewayCheck is /readyz's "gateways" part: each gateway (of RELAY_GATEWAY
// or a route) that has failed every attempt for gatewayDownFor or longer
// is named, with since when and its last reply.
//
// Whether that makes the process unready depends on what it does. A
// process that accepts mail (RELAY_ROLE all or submission) stays ready: the
// queue holds the mail until a gateway is back, which is the point of
// having one, and a 503 would take the submission listener out of its load
// balancer and refuse mail for nothing; the gateways are listed under
// "degraded". A worker-only process (RELAY_ROLE=worker) whose RELAY_GATEWAY
// gateways are all down can deliver nothing of most mail: it is not ready,
// so that the orchestrator's view and alerts show it. One gateway down while
// another of its list works, or a route's gateways down, stays degraded.
func gatewayCheck(w *outbound.Worker, role Role, now func() time.Time) readyCheck {
	return readyCheck{name: "gateways", check: func(context.Context) error {
		var down []string
		mainTotal, mainDown := 0, 0
		for _, s := range w.GatewayStatus() {
			if s.Route == "" {
				mainTotal++
			}
			if s.DownSince.IsZero() || now().Sub(s.DownSince) < gatewayDownFor {
				continue
			}
			if s.Route == "" {
				mainDown++
			}
			d := fmt.Sprintf("%s down since %s", s.Gateway, s.DownSince.UTC().Format(time.RFC3339))
			if s.Route != "" {
				d += " (route " + s.Route + ")"
			}
			if s.LastError != "" {
				d += ": " + s.LastError
			}
			down = append(down, d)
		}
		if len(down) == 0 {
			return nil
		}
		slices.Sort(down)
		msg := strings.Join(down, "; ")
		if role == RoleWorker && mainTotal > 0 && mainDown == mainTotal {
			return fmt.Errorf("every RELAY_GATEWAY gateway is down: %s", msg)
		}
		return &degraded{msg}
	}}
}
