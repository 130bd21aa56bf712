package main

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/relay"
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
		c.validateLDAP(bad)
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

// validateLDAP checks the LDAP variables as auth.NewLDAPBackend would,
// but here, with the rest and before anything is opened, naming each
// variable.
func (c *Config) validateLDAP(bad badFunc) {
	u, err := url.Parse(c.LDAPURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
		bad("LDAP_URL", "%q: want ldap://host[:port] or ldaps://host[:port]", c.LDAPURL)
	case u.Scheme == "ldaps" && c.LDAPStartTLS:
		bad("LDAP_STARTTLS", "true with the ldaps:// URL %s, which is TLS from the start: unset RELAY_LDAP_STARTTLS, or use ldap:// (port 389) with StartTLS", c.LDAPURL)
	}
	if c.LDAPBaseDN == "" {
		bad("LDAP_BASE_DN", "required with RELAY_AUTH=ldap")
	} else if _, err := ldap.ParseDN(c.LDAPBaseDN); err != nil {
		bad("LDAP_BASE_DN", "%q is not a DN such as ou=people,dc=example,dc=org: %v", c.LDAPBaseDN, err)
	}
	if !strings.Contains(c.LDAPFilter, "{user}") {
		bad("LDAP_FILTER", "must contain {user}")
	} else if _, err := ldap.CompileFilter(strings.ReplaceAll(c.LDAPFilter, "{user}", "x")); err != nil {
		bad("LDAP_FILTER", "%q is not an LDAP filter: %v", c.LDAPFilter, err)
	}
}

// validateScan checks the virus scanning variables (RELAY_CLAMD_*), then
// the inbound ones (validateInbound).
func (c *Config) validateScan(bad badFunc) {
	if c.ClamdAddr != "" {
		if _, _, err := relay.ParseClamdAddr(c.ClamdAddr); err != nil {
			bad("CLAMD_ADDR", "%v", err)
		}
	}
	if c.ClamdTimeout < 100*time.Millisecond {
		bad("CLAMD_TIMEOUT", "must be at least 100ms")
	}
	if c.ClamdMaxBytes < 1024 {
		bad("CLAMD_MAX_BYTES", "%d is too small: set clamd's StreamMaxLength in bytes", c.ClamdMaxBytes)
	}
	if c.ClamdOversize != "refuse" && c.ClamdOversize != "accept" {
		bad("CLAMD_OVERSIZE", "%q: want refuse or accept", c.ClamdOversize)
	}
	if c.ClamdMaxConnections < 1 {
		bad("CLAMD_MAX_CONNECTIONS", "must be at least 1")
	}
	c.validateInbound(bad)
}

// validateInbound checks the MX listener's and the inbound route's
// variables, and fills in c.localDomains.
func (c *Config) validateInbound(bad badFunc) {
	c.localDomains = nil
	if c.LocalDomains != "" {
		ld, err := relay.NewLocalDomains(strings.Split(c.LocalDomains, ","))
		if err != nil {
			bad("LOCAL_DOMAINS", "%v", err)
		}
		c.localDomains = ld
	}
	if c.InboundGateway != "" {
		if _, err := outbound.ParseInboundGateway(c.InboundGateway); err != nil {
			bad("INBOUND_GATEWAY", "%v", err)
		}
		if c.LocalDomains == "" {
			bad("LOCAL_DOMAINS", "required with RELAY_INBOUND_GATEWAY: the domains whose mail goes there")
		}
	}
	if c.MXMaxConnectionsPerIP < 0 || c.MXMessagesPerMinute < 0 {
		bad("MX_MAX_CONNECTIONS_PER_IP", "RELAY_MX_MAX_CONNECTIONS_PER_IP and RELAY_MX_MESSAGES_PER_MINUTE must not be negative")
	}
	if c.MXAddr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(c.MXAddr); err != nil {
		bad("MX_ADDR", "%q is not host:port or :port", c.MXAddr)
	}
	if c.LocalDomains == "" {
		bad("LOCAL_DOMAINS", "required with RELAY_MX_ADDR")
	}
	if c.InboundGateway == "" {
		bad("INBOUND_GATEWAY", "required with RELAY_MX_ADDR: accepted inbound mail goes only there")
	}
	if c.Role == RoleWorker {
		bad("MX_ADDR", "the MX listener runs with RELAY_ROLE all or submission, not worker")
	}
	if c.MXVerifyRecipients && !slices.Contains(c.backends, "file") && !slices.Contains(c.backends, "ldap") {
		bad("MX_VERIFY_RECIPIENTS", "needs a backend that lists addresses in RELAY_AUTH: file or ldap")
	}
}

// conversionHint says what a variable that envconfig could not convert
// should hold, in words a person can act on, with the field's default as
// the example.
func conversionHint(f reflect.StructField, value string) string {
	example := f.Tag.Get("default")
	switch {
	case f.Type == reflect.TypeFor[time.Duration]():
		if example == "" || example == "0" || example == "0s" {
			example = "90s"
		}
		hint := "want a duration such as " + example + " (units s, m, h); days are not a unit"
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), "d")); err == nil && strings.HasSuffix(strings.TrimSpace(value), "d") && n > 0 {
			hint += fmt.Sprintf(": %dd is %dh", n, 24*n)
		}
		return hint
	case f.Type.Kind() == reflect.Bool:
		return "want true or false"
	case strings.HasSuffix(f.Name, "Bytes"):
		return "want a number of bytes such as " + example + " (no unit: 25 MiB is 26214400)"
	case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
		if example == "" {
			example = "10"
		}
		return "want a whole number such as " + example
	}
	return "want a " + f.Type.String()
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
