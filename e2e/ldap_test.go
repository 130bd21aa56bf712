package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestBinaryLDAP runs the binary with RELAY_AUTH=ldap against a real
// OpenLDAP (scripts/ldap-test.sh, started by scripts/test.sh when slapd is
// installed): a directory user submits over STARTTLS, a wrong password is
// refused, a directory alias is an allowed sender, and both StartTLS and
// LDAPS to the directory work.
func TestBinaryLDAP(t *testing.T) {
	url, ldaps, ca := os.Getenv("EDGERELAY_SLAPD_URL"), os.Getenv("EDGERELAY_SLAPD_LDAPS_URL"), os.Getenv("EDGERELAY_SLAPD_CA")
	if url == "" || ldaps == "" || ca == "" {
		t.Skip("no slapd: run scripts/ldap-test.sh start (scripts/test.sh does when slapd is installed)")
	}
	for _, mode := range []struct {
		name string
		env  map[string]string
	}{
		{"starttls", map[string]string{"RELAY_LDAP_URL": url, "RELAY_LDAP_STARTTLS": "true"}},
		{"ldaps", map[string]string{"RELAY_LDAP_URL": ldaps}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sk := newSink(t, "127.0.0.1:0")
			env := map[string]string{
				"RELAY_DATA_DIR":           t.TempDir(),
				"RELAY_GATEWAY":            sk.addr(),
				"RELAY_GATEWAY_TLS":        "none",
				"RELAY_AUTH":               "ldap",
				"RELAY_LDAP_CA_FILE":       ca,
				"RELAY_LDAP_BIND_DN":       "cn=relay,dc=example,dc=org",
				"RELAY_LDAP_BIND_PASSWORD": "relaypw",
				"RELAY_LDAP_BASE_DN":       "dc=example,dc=org",
			}
			for k, v := range mode.env {
				env[k] = v
			}
			p := start(t, env)
			if !strings.Contains(p.logs.String(), "LDAP directory reachable") {
				t.Fatalf("directory not reachable at start:\n%s", p.logs.String())
			}
			// uid login; mail login; the second mail value is an allowed sender.
			if err := p.submit("alice", "alicepw", "alice@example.org", []string{"x@example.net"}, msg("alice@example.org", "x@example.net", "ldap uid")); err != nil {
				t.Fatalf("alice by uid: %v", err)
			}
			if err := p.submit("bob@example.org", "bobpw", "postmaster@example.org", []string{"x@example.net"}, msg("postmaster@example.org", "x@example.net", "ldap alias")); err != nil {
				t.Fatalf("bob by mail, sending as his alias: %v", err)
			}
			if err := p.submit("alice", "wrong", "alice@example.org", []string{"x@example.net"}, msg("alice@example.org", "x@example.net", "x")); err == nil || !strings.Contains(err.Error(), "535") {
				t.Fatalf("wrong password: %v", err)
			}
			if err := p.submit("alice", "alicepw", "bob@example.org", []string{"x@example.net"}, msg("bob@example.org", "x@example.net", "x")); err == nil || !strings.Contains(err.Error(), "553") {
				t.Fatalf("alice as bob: %v", err)
			}
			waitFor(t, "two deliveries", 60*time.Second, func() bool { return len(sk.messages()) == 2 })
			p.stop()
		})
	}
}
