package main

import "github.com/edgerelay/edgerelay/outbound"

// gatewayAuth is how the worker authenticates to one SMTP gateway with
// the given credentials: RELAY_GATEWAY_AUTH's mechanism and, when OAuth2
// is configured, the shared token source. (skeleton: issue 12's AUTH work
// replaces it)
func (c *Config) gatewayAuth(username, password string) outbound.GatewayAuthConfig {
	return outbound.GatewayAuthConfig{Username: username, Password: password}
}
