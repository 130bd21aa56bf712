package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgerelay/edgerelay/auth"
)

// badFunc reports one wrong value: the variable's name without the RELAY_
// prefix, and what is wrong with it.
type badFunc func(name, format string, args ...any)

// validateIdentity checks RELAY_AUTH and the variables of the backends it
// lists (LDAP, OIDC), and fills in c.backends. validate calls it in its
// fixed place, after the bounce store.
func (c *Config) validateIdentity(bad badFunc) {
	c.backends = nil
	for _, b := range strings.Split(c.Auth, ",") {
		b = strings.TrimSpace(strings.ToLower(b))
		switch b {
		case "file", "ldap", "oidc":
			if slices.Contains(c.backends, b) {
				bad("AUTH", "%q is listed twice", b)
			}
			c.backends = append(c.backends, b)
		case "":
		default:
			bad("AUTH", "unknown backend %q: want file, ldap or oidc", b)
		}
	}
	if len(c.backends) == 0 {
		bad("AUTH", "at least one backend is needed")
	}
	if slices.Contains(c.backends, "ldap") {
		if !strings.HasPrefix(c.LDAPURL, "ldap://") && !strings.HasPrefix(c.LDAPURL, "ldaps://") {
			bad("LDAP_URL", "%q: want ldap://host[:port] or ldaps://host[:port]", c.LDAPURL)
		}
		if c.LDAPBaseDN == "" {
			bad("LDAP_BASE_DN", "required with RELAY_AUTH=ldap")
		}
		if !strings.Contains(c.LDAPFilter, "{user}") {
			bad("LDAP_FILTER", "must contain {user}")
		}
	}
	if slices.Contains(c.backends, "oidc") {
		if !strings.HasPrefix(c.OIDCIssuer, "https://") && !strings.HasPrefix(c.OIDCIssuer, "http://") {
			bad("OIDC_ISSUER", "%q: want the issuer URL", c.OIDCIssuer)
		}
		if c.OIDCAudience == "" {
			bad("OIDC_AUDIENCE", "required with RELAY_AUTH=oidc")
		}
		if c.OIDCPasswordGrant && c.OIDCClientID == "" {
			bad("OIDC_CLIENT_ID", "required with RELAY_OIDC_PASSWORD_GRANT=true")
		}
		// A shared issuer signs tokens for any organisation's accounts
		// (issue 8 item 19): without an allow-list, anyone could relay.
		if err := auth.CheckIssuerAllowList(c.OIDCIssuer, strings.Split(c.OIDCAllowedDomains, ","), strings.Split(c.OIDCAllowedTenants, ",")); err != nil {
			if strings.TrimSpace(c.OIDCAllowedDomains) != "" {
				bad("OIDC_ALLOWED_TENANTS", "is required: %s is Entra ID's shared issuer, whose email claim no tenant verifies, so allowed domains alone do not restrict it", c.OIDCIssuer)
			} else {
				bad("OIDC_ALLOWED_DOMAINS", "or RELAY_OIDC_ALLOWED_TENANTS is required: %s is a shared issuer that signs tokens for every organisation's accounts", c.OIDCIssuer)
			}
		}
	}
}

// conversionHint says what a variable that envconfig could not convert
// should hold.
func conversionHint(pe *envconfig.ParseError) string {
	switch pe.TypeName {
	case "bool":
		return "want true or false"
	case "int", "int64":
		return "want a whole number"
	case "Duration":
		return "want a duration such as 90s, 5m or 120h"
	}
	return "want a " + pe.TypeName
}

// parseSchedule parses "5m,10m,1h" into delays, each positive.
func parseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration (want a list such as 5m,10m,1h)", f)
		}
		out = append(out, d)
	}
	return out, nil
}
