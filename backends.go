package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
)

// Placeholders replaced as the LDAP, OIDC and SQS backends land.

func newLDAPBackend(cfg *Config, log *slog.Logger) (auth.PasswordBackend, error) {
	return nil, errors.New("RELAY_AUTH: ldap is not available in this build yet")
}

type oidcBackend interface {
	auth.TokenBackend
	auth.PasswordBackend
}

func newOIDCBackend(ctx context.Context, cfg *Config, log *slog.Logger) (oidcBackend, error) {
	return nil, errors.New("RELAY_AUTH: oidc is not available in this build yet")
}

func openSQS(ctx context.Context, cfg *Config, log *slog.Logger) (queue.Queue, []string, func(), error) {
	return nil, nil, nil, errors.New("RELAY_QUEUE: sqs is not available in this build yet")
}

func openBounceStore(ctx context.Context, cfg *Config, queueDirs []string) (outbound.BounceStore, error) {
	return outbound.OpenBounceStore(cfg.BounceStore, outbound.BounceStoreOptions{QueueDirs: queueDirs})
}
