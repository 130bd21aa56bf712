package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPasswordCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"hash-password"}, strings.NewReader("s3cret pass\n"), &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if !strings.HasPrefix(h, "$2") || bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")) != nil {
		t.Fatalf("hash %q does not match", h)
	}
	if rc := run([]string{"hash-password"}, strings.NewReader("\n"), &out, &errb); rc == 0 {
		t.Fatal("empty password accepted")
	}
}

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"version"}, nil, &out, &errb); rc != 0 || !strings.HasPrefix(out.String(), "edgerelay ") {
		t.Fatalf("version: %d %q", rc, out.String())
	}
	if rc := run([]string{"frobnicate"}, nil, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", rc, errb.String())
	}
	// Unset, the healthcheck asks the address the server listens on by
	// default: Config's, not a copy of it.
	c, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := configDefault("HTTPAddr"); got != c.HTTPAddr || got == "" {
		t.Fatalf("configDefault(HTTPAddr) = %q, loaded default %q", got, c.HTTPAddr)
	}
	t.Setenv("RELAY_HTTP_ADDR", "127.0.0.1:1")
	if rc := run([]string{"healthcheck"}, nil, &out, &errb); rc != 1 {
		t.Fatalf("healthcheck with nothing listening: %d", rc)
	}
}
