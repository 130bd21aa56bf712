package auth

import (
	"context"
	"errors"
	"net"
	"testing"
)

// downBackend is a password backend whose service is (or is not) known out.
type downBackend struct {
	name string
	down bool
}

func (d *downBackend) Name() string { return d.name }
func (d *downBackend) CheckPassword(context.Context, string, string) (*Identity, error) {
	return nil, ErrUnavailable
}
func (d *downBackend) knownDown() error {
	if d.down {
		return errors.New(d.name + " down")
	}
	return nil
}

// TestAuthenticatorReady: not ready only when every backend is known out;
// ready again as soon as one is back.
func TestAuthenticatorReady(t *testing.T) {
	ldap, oidc := &downBackend{name: "ldap"}, &downBackend{name: "oidc"}
	a := New(Options{Password: []PasswordBackend{ldap, oidc}})
	ctx := context.Background()
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("both up: %v", err)
	}
	ldap.down = true
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("one of two down: %v, want ready", err)
	}
	oidc.down = true
	if err := a.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("both down: %v, want ErrUnavailable", err)
	}
	ldap.down = false
	if err := a.Ready(ctx); err != nil {
		t.Fatalf("one back: %v", err)
	}
}

// TestOIDCReadyIssuerDown: an issuer that cannot be discovered (nothing
// listens on its loopback port) makes the only backend known down.
func TestOIDCReadyIssuerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b, err := NewOIDCBackend(context.Background(), OIDCConfig{Issuer: "http://" + addr, Audience: "relay"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Token: []TokenBackend{b}})
	if err := a.Ready(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("issuer down: %v, want ErrUnavailable", err)
	}
}
