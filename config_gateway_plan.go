package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/outbound"
)

// gatewayEntry is one gateway with the credentials it gets.
type gatewayEntry struct {
	gatewayURL
	user, password string
}

// gatewayPlan is RELAY_GATEWAY and RELAY_ROUTES read and checked, with
// the credentials of each SMTP gateway.
type gatewayPlan struct {
	main   []gatewayEntry
	routes []routeEntry
}

type routeEntry struct {
	domain string
	list   []gatewayEntry
}

// minGatewayBackoff: a shorter RELAY_GATEWAY_BACKOFF would have every
// delivery wait for a gateway that is down.
const minGatewayBackoff = time.Second

// gatewayPlan reads the gateway variables, reporting each problem with bad
// (one line per problem, naming the variable); the plan is complete only
// when bad was not called. validate calls it to check; newWorker to build.
func (c *Config) gatewayPlan(bad badFunc) *gatewayPlan {
	p := &gatewayPlan{}
	if c.GatewayBackoff < minGatewayBackoff {
		bad("GATEWAY_BACKOFF", "must be at least %s", minGatewayBackoff)
	}
	creds, err := readGatewayCreds(c.GatewayCredentialsFile)
	if err != nil {
		bad("GATEWAY_CREDENTIALS_FILE", "%v", err)
	}
	var main []gatewayURL
	if c.Gateway != "" {
		if main, err = parseGatewayList(c.Gateway, ","); err != nil {
			bad("GATEWAY", "%v", err)
		}
	}
	routes, err := parseRoutes(c.Routes)
	if err != nil {
		bad("ROUTES", "%v", err)
	}
	envCreds := c.GatewayUsername != ""
	if envCreds && c.Gateway != "" && main != nil && !hasSMTP(main) {
		bad("GATEWAY_USERNAME", "RELAY_GATEWAY has no SMTP gateway to use it with")
	}
	entries := func(name string, list []gatewayURL, first bool) []gatewayEntry {
		out := make([]gatewayEntry, 0, len(list))
		for _, g := range list {
			e := gatewayEntry{gatewayURL: g}
			if g.Scheme == schemeSMTPInsecure && !g.loopback() && !c.GatewayAllowInsecure {
				bad(name, "%s: %v", gatewayShown(g.URL), errInsecure)
			}
			from := ""
			switch {
			case !g.smtp():
			case first && envCreds:
				e.user, e.password, from = c.GatewayUsername, c.GatewayPassword, "GATEWAY_USERNAME"
			default:
				if cr, ok := creds.lookup(g); ok {
					e.user, e.password = cr.user, cr.password
					from = "GATEWAY_CREDENTIALS_FILE"
				}
			}
			if g.smtp() {
				first = false
			}
			if e.user != "" && (g.Scheme == schemeSMTPInsecure || g.Scheme == schemeHostPort && c.GatewayTLS == outbound.GatewayTLSNone) {
				if g.Scheme == schemeHostPort && from == "GATEWAY_USERNAME" {
					bad("GATEWAY_TLS", "none would send the gateway credentials (password or OAuth2 token) in clear; use starttls or tls")
				} else {
					bad(from, "%s has no TLS: credentials (a password or an OAuth2 token) are never sent in clear; use smtp:// or smtps://", gatewayShown(g.URL))
				}
			}
			out = append(out, e)
		}
		return out
	}
	p.main = entries("GATEWAY", main, true)
	for _, r := range routes {
		p.routes = append(p.routes, routeEntry{domain: r.Domain, list: entries("ROUTES", r.List, false)})
	}
	return p
}

func hasSMTP(list []gatewayURL) bool {
	for _, g := range list {
		if g.smtp() {
			return true
		}
	}
	return false
}

// tlsMode is how an SMTP gateway's connection is protected.
func (c *Config) tlsMode(g gatewayURL) string {
	switch g.Scheme {
	case schemeSMTP:
		return outbound.GatewayTLSStartTLS
	case schemeSMTPS:
		return outbound.GatewayTLSImplicit
	case schemeSMTPInsecure:
		return outbound.GatewayTLSNone
	}
	return c.GatewayTLS
}

// outboundGateways builds the worker's gateway lists: RELAY_GATEWAY's
// (nil: MX) and RELAY_ROUTES's by domain. roots verify SMTP gateways'
// certificates (nil: the system's).
func (c *Config) outboundGateways(ctx context.Context, roots *x509.CertPool) ([]outbound.GatewayConfig, map[string][]outbound.GatewayConfig, error) {
	var errs []string
	p := c.gatewayPlan(func(name, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s_%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
	})
	if len(errs) > 0 {
		return nil, nil, errors.New(strings.Join(errs, "\n"))
	}
	build := func(name string, list []gatewayEntry) ([]outbound.GatewayConfig, error) {
		var out []outbound.GatewayConfig
		for _, e := range list {
			g := outbound.GatewayConfig{URL: e.URL}
			if !e.smtp() {
				ses, err := newSESClient(ctx, c, e.Region)
				if err != nil {
					return nil, fmt.Errorf("%s_%s: %s: %w", envPrefix, name, e.URL, err)
				}
				g.SES, g.SESRegion, g.ConfigurationSet = ses, e.Region, c.SESConfigurationSet
			} else {
				g.Addr, g.TLS, g.TLSVerify, g.RootCAs = e.Addr, c.tlsMode(e.gatewayURL), c.GatewayTLSVerify, roots
				// Every SMTP gateway with TLS gets the AUTH configuration:
				// its password, or the shared OAuth2 token source
				// (config_oauth.go). One without TLS gets none: nothing
				// secret is sent in clear (a password for it was refused).
				if g.TLS != outbound.GatewayTLSNone {
					g.Auth = c.gatewayAuth(e.user, e.password)
				}
			}
			out = append(out, g)
		}
		return out, nil
	}
	main, err := build("GATEWAY", p.main)
	if err != nil {
		return nil, nil, err
	}
	routes := map[string][]outbound.GatewayConfig{}
	for _, r := range p.routes {
		if routes[r.domain], err = build("ROUTES", r.list); err != nil {
			return nil, nil, err
		}
	}
	return main, routes, nil
}
