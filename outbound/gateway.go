package outbound

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Gateways: Options.Gateways (RELAY_GATEWAY) is the main failover list,
// Options.Routes gives sender domains their own (routes.go), and each
// entry is a hop: an SMTP smarthost (gatewaysmtp.go) or the SES API
// (ses.go). The failover and back-off rules are in gatewaylist.go.

// newHop builds the hop for one gateway: SES when cfg.SES is set, SMTP
// otherwise.
func (w *Worker) newHop(cfg GatewayConfig) hop {
	if cfg.SES != nil {
		return w.newSESHop(cfg)
	}
	return w.newSMTPHop(cfg)
}

// legacyGateway is the one-entry list of the single-gateway Options
// (Gateway, GatewayTLS, GatewayUsername…), nil without Gateway.
func legacyGateway(o *Options) []GatewayConfig {
	if o.Gateway == "" {
		return nil
	}
	return []GatewayConfig{{
		URL:       o.Gateway,
		Addr:      o.Gateway,
		TLS:       o.GatewayTLS,
		TLSVerify: o.GatewayTLSVerify,
		RootCAs:   o.GatewayRootCAs,
		Auth:      GatewayAuthConfig{Username: o.GatewayUsername, Password: o.GatewayPassword},
	}}
}

// checkGateways checks one list: what configuration parsed is checked
// here again, so that a Worker never holds a gateway it cannot dial.
func checkGateways(what string, list []GatewayConfig) error {
	if len(list) == 0 {
		return fmt.Errorf("outbound: %s is an empty gateway list", what)
	}
	var seen []string
	for _, g := range list {
		if slices.Contains(seen, g.URL) {
			return fmt.Errorf("outbound: %s lists gateway %q twice", what, g.URL)
		}
		seen = append(seen, g.URL)
		if g.URL == "" {
			return fmt.Errorf("outbound: %s has a gateway without URL", what)
		}
		if g.SES != nil {
			continue
		}
		host, port, err := net.SplitHostPort(g.Addr)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("outbound: gateway %q: Addr %q is not host:port", g.URL, g.Addr)
		}
		switch g.TLS {
		case GatewayTLSStartTLS, GatewayTLSImplicit:
		case GatewayTLSNone:
			if g.Auth.Username != "" || g.Auth.Tokens != nil {
				return fmt.Errorf("outbound: gateway %q: credentials need TLS (starttls or tls), not none", g.URL)
			}
		default:
			return fmt.Errorf("outbound: gateway %q: TLS %q is not one of starttls, tls, none", g.URL, g.TLS)
		}
	}
	return nil
}

// setupGateways checks the gateway Options and builds the lists.
func (w *Worker) setupGateways(o *Options) error {
	if o.Gateway != "" && len(o.Gateways) > 0 {
		return errors.New("outbound: Gateway and Gateways are exclusive")
	}
	main := o.Gateways
	if o.Gateway != "" {
		host, port, err := net.SplitHostPort(o.Gateway)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("outbound: Gateway %q is not host:port", o.Gateway)
		}
		if o.GatewayUsername != "" && o.GatewayTLS == GatewayTLSNone {
			return errors.New("outbound: gateway credentials need GatewayTLS starttls or tls, not none")
		}
		main = legacyGateway(o)
	}
	if len(main) > 0 {
		if err := checkGateways("Gateways", main); err != nil {
			return err
		}
		w.main = w.newGatewayList("", main)
	}
	w.routes = make(map[string]*gatewayList, len(o.Routes))
	for d, list := range o.Routes {
		if cd, ok := CanonicalDomain(d); !ok || cd != d {
			return fmt.Errorf("outbound: route %q is not a lower-case A-label domain", d)
		}
		if err := checkGateways("route "+d, list); err != nil {
			return err
		}
		w.routes[d] = w.newGatewayList(d, list)
	}
	return nil
}

// lists returns every gateway list, the main one first, then the routes by
// domain.
func (w *Worker) lists() []*gatewayList {
	var out []*gatewayList
	if w.main != nil {
		out = append(out, w.main)
	}
	keys := make([]string, 0, len(w.routes))
	for k := range w.routes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, w.routes[k])
	}
	return out
}

// GatewayStatus reports every gateway's health: RELAY_GATEWAY's in order,
// then each route's by domain.
func (w *Worker) GatewayStatus() []GatewayStatus {
	var out []GatewayStatus
	for _, l := range w.lists() {
		out = append(out, l.status()...)
	}
	return out
}

// closeGateways ends the gateways' idle connections.
func (w *Worker) closeGateways() {
	for _, l := range w.lists() {
		l.close()
	}
}

// describeGateways is the start line's route: "MX", or the lists.
func (w *Worker) describeGateways() string {
	var parts []string
	for _, l := range w.lists() {
		names := make([]string, len(l.hops))
		for i, h := range l.hops {
			names[i] = h.name()
		}
		p := strings.Join(names, " → ")
		if l.key != "" {
			p = l.key + ": " + p
		}
		parts = append(parts, p)
	}
	if w.main == nil {
		parts = append([]string{"MX"}, parts...)
	}
	return strings.Join(parts, "; ")
}
