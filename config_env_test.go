package main

import (
	"os"
	"reflect"
	"testing"
)

// configNames returns the NAME of every RELAY_NAME variable.
func configNames() []string {
	var names []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("envconfig"); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// clearUnprefixedEnv unsets HOSTNAME, QUEUE, AUTH... (every variable's
// name without RELAY_) for the test (restored after).
func clearUnprefixedEnv(t *testing.T) {
	t.Helper()
	for _, name := range configNames() {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

// TestConfigIgnoresUnprefixedNames: only RELAY_NAME configures the relay.
// envconfig falls back to plain NAME when RELAY_NAME is unset, so Docker's
// HOSTNAME (the container ID), or a QUEUE, AUTH or GATEWAY meant for some
// other program, used to configure the relay unasked. With every
// unprefixed name set and no RELAY_ variable, the loaded Config is the
// defaults' and the host name still comes from os.Hostname.
func TestConfigIgnoresUnprefixedNames(t *testing.T) {
	clearRelayEnv(t)
	clearUnprefixedEnv(t)
	var want Config
	if errs := want.load(); len(errs) > 0 {
		t.Fatal(errs)
	}
	wantValid, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}

	hostile := map[string]string{
		"HOSTNAME":      "evil.example",
		"QUEUE":         "sqs",
		"SQS_QUEUE_URL": "https://sqs.evil.example/1/q",
		"S3_BUCKET":     "evil",
		"GATEWAY":       "smtp.evil.example:25",
		"GATEWAY_TLS":   "none",
		"AUTH":          "ldap",
		"LDAP_URL":      "ldap://ldap.evil.example",
		"ROLE":          "worker",
		"DATA_DIR":      "/tmp/evil",
		"LOG_LEVEL":     "debug",
	}
	for _, name := range configNames() {
		v, ok := hostile[name]
		if !ok {
			v = "1" // a bool and a number; not a duration: once a type error
		}
		t.Setenv(name, v)
	}
	var got Config
	if errs := got.load(); len(errs) > 0 {
		t.Fatalf("unprefixed names were read: %v", errs)
	}
	if len(got.set) != 0 {
		t.Errorf("recorded as set: %v", got.set)
	}
	got.set, got.unparsed, want.set, want.unparsed = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unprefixed names changed the config:\ngot  %+v\nwant %+v", got, want)
	}
	c, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := os.Hostname()
	if c.Hostname != h || c.Hostname == "evil.example" {
		t.Errorf("Hostname %q, want os.Hostname() %q", c.Hostname, h)
	}
	c.set, wantValid.set = nil, nil
	if !reflect.DeepEqual(c, wantValid) {
		t.Errorf("validated config differs:\ngot  %+v\nwant %+v", c, wantValid)
	}

	// RELAY_HOSTNAME itself still counts, the unprefixed one set beside it.
	t.Setenv("RELAY_HOSTNAME", "relay.example.org")
	if c, err := loadConfig(); err != nil || c.Hostname != "relay.example.org" {
		t.Fatalf("RELAY_HOSTNAME: %v %v", c, err)
	}
}
