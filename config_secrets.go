package main

import (
	"os"
	"strings"
)

// readSecretFiles reads each *_FILE variable (Docker and Kubernetes
// secrets) into the value it stands for, without the trailing line end.
// Setting both the value and its _FILE variable is an error. validate calls
// it in its fixed place, after the identity backends.
func (c *Config) readSecretFiles(bad badFunc) {
	for _, s := range []struct {
		name string
		v    *string
		file string
	}{
		{"LDAP_BIND_PASSWORD_FILE", &c.LDAPBindPassword, c.LDAPBindPasswordFile},
		{"OIDC_CLIENT_SECRET_FILE", &c.OIDCClientSecret, c.OIDCClientSecretFile},
		{"GATEWAY_PASSWORD_FILE", &c.GatewayPassword, c.GatewayPasswordFile},
		{"GATEWAY_OAUTH_CLIENT_SECRET_FILE", &c.GatewayOAuthClientSecret, c.GatewayOAuthClientSecretFile},
		{"ADMIN_TOKEN_FILE", &c.AdminToken, c.AdminTokenFile},
	} {
		name, v, file := s.name, s.v, s.file
		if file == "" {
			continue
		}
		if *v != "" {
			bad(name, "set both the value and the _FILE variable; use one")
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			bad(name, "%v", err)
			continue
		}
		*v = strings.TrimRight(string(b), "\r\n")
	}
}
