package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"
)

// clearRelayEnv unsets every RELAY_ variable for the test (restored after).
func clearRelayEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RELAY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// TestConfigReportsEveryProblem (issue 15, finding 7): values of the wrong
// type no longer stop at the first; each is one line naming the variable
// with a hint a person can act on, and the other problems follow.
func TestConfigReportsEveryProblem(t *testing.T) {
	clearRelayEnv(t)
	env := map[string]string{
		"RELAY_INSECURE_AUTH":     "yes",
		"RELAY_MAX_RECIPIENTS":    "many",
		"RELAY_MAX_MESSAGE_BYTES": "25MB",
		"RELAY_QUEUE_LIFETIME":    "5d",
		"RELAY_AUTH_CACHE_TTL":    "1 minute",
		"RELAY_GATEWAY_TLS":       "maybe",
		"RELAY_LOG_LEVEL":         "loud",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	_, err := loadConfig()
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := map[string]string{
		"RELAY_INSECURE_AUTH":     `cannot use "yes": want true or false`,
		"RELAY_MAX_RECIPIENTS":    `cannot use "many": want a whole number such as 100`,
		"RELAY_MAX_MESSAGE_BYTES": `cannot use "25MB": want a number of bytes such as 26214400`,
		"RELAY_QUEUE_LIFETIME":    `cannot use "5d": want a duration such as 120h (units s, m, h); days are not a unit: 5d is 120h`,
		"RELAY_AUTH_CACHE_TTL":    `cannot use "1 minute": want a duration such as 60s`,
		"RELAY_GATEWAY_TLS":       `"maybe": want starttls, tls or none`,
		"RELAY_LOG_LEVEL":         `"loud": want debug, info, warn or error`,
	}
	if len(lines) != len(want) {
		t.Errorf("%d lines, want one per variable (%d):\n%s", len(lines), len(want), err)
	}
	for name, text := range want {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, name+":") {
				n++
				if !strings.Contains(l, text) {
					t.Errorf("%s: got %q, want it to contain %q", name, l, text)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s reported %d times, want once:\n%s", name, n, err)
		}
	}
}

// TestConfigDelayWarningDefaultExplained: RELAY_QUEUE_LIFETIME=4h alone
// fails on RELAY_DELAY_WARNING, and the line says that its default is 4h.
func TestConfigDelayWarningDefaultExplained(t *testing.T) {
	clearRelayEnv(t)
	t.Setenv("RELAY_QUEUE_LIFETIME", "4h")
	_, err := loadConfig()
	if err == nil || !strings.Contains(err.Error(), "RELAY_DELAY_WARNING: not set, so its default 4h applies") ||
		!strings.Contains(err.Error(), "RELAY_QUEUE_LIFETIME (4h)") {
		t.Fatalf("got %v", err)
	}
	t.Setenv("RELAY_DELAY_WARNING", "5h")
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "RELAY_DELAY_WARNING: 5h must be 0 (off) or less than RELAY_QUEUE_LIFETIME (4h)") {
		t.Fatalf("got %v", err)
	}
	t.Setenv("RELAY_DELAY_WARNING", "0")
	if _, err := loadConfig(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigLDAPValidatedWithTheRest (finding 11): RELAY_LDAP_STARTTLS with
// an ldaps:// URL, a base DN that is not a DN and a filter that does not
// compile are startup errors naming their variable, reported with the rest
// of the configuration, before anything is opened.
func TestConfigLDAPValidatedWithTheRest(t *testing.T) {
	clearRelayEnv(t)
	t.Setenv("RELAY_AUTH", "ldap")
	t.Setenv("RELAY_LDAP_URL", "ldaps://dc1.corp.example.org")
	t.Setenv("RELAY_LDAP_STARTTLS", "true")
	t.Setenv("RELAY_LDAP_BASE_DN", "people")
	t.Setenv("RELAY_LDAP_FILTER", "(uid={user}")
	t.Setenv("RELAY_MAX_RECIPIENTS", "0")
	_, err := loadConfig()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		"RELAY_LDAP_STARTTLS: true with the ldaps:// URL ldaps://dc1.corp.example.org",
		"RELAY_LDAP_BASE_DN: \"people\" is not a DN",
		"RELAY_LDAP_FILTER: \"(uid={user}\" is not an LDAP filter",
		"RELAY_MAX_RECIPIENTS: must be at least 1",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%s", w, err)
		}
	}
	t.Setenv("RELAY_LDAP_URL", "ldap://ldap.example.org")
	t.Setenv("RELAY_LDAP_BASE_DN", "ou=people,dc=example,dc=org")
	t.Setenv("RELAY_LDAP_FILTER", "(uid={user})")
	t.Setenv("RELAY_MAX_RECIPIENTS", "10")
	if _, err := loadConfig(); err != nil {
		t.Fatalf("ldap:// with StartTLS: %v", err)
	}
}

// TestConfigLoadMatchesEnvconfig: loading one variable at a time gives
// the Config that envconfig.Process gives for the same valid environment:
// names, defaults and conversions unchanged. The environments hold no
// unprefixed names (clearUnprefixedEnv): envconfig.Process falls back to
// plain NAME when RELAY_NAME is unset and load deliberately does not
// (TestConfigIgnoresUnprefixedNames), so with HOSTNAME, QUEUE, AUTH... set
// the two differ by design.
func TestConfigLoadMatchesEnvconfig(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"RELAY_MAX_MESSAGE_BYTES": "0x1000000", "RELAY_QUEUE_LIFETIME": "72h", "RELAY_INSECURE_AUTH": "1",
			"RELAY_SUBMISSION_ADDR": "", "RELAY_ROLE": "worker", "RELAY_QUEUE": "sqs", "RELAY_MAX_RECIPIENTS": "7",
			"RELAY_HOSTNAME": "relay.example.org", "RELAY_CHECK_HEADER_FROM": "F"},
	} {
		clearRelayEnv(t)
		clearUnprefixedEnv(t)
		for k, v := range env {
			t.Setenv(k, v)
		}
		var want, got Config
		if err := envconfig.Process(envPrefix, &want); err != nil {
			t.Fatal(err)
		}
		if errs := got.load(); len(errs) > 0 {
			t.Fatal(errs)
		}
		got.set, got.unparsed = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("env %v:\nload    %+v\nProcess %+v", env, got, want)
		}
	}
}
