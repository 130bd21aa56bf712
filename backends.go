package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
)

func newLDAPBackend(cfg *Config, log *slog.Logger) (auth.PasswordBackend, error) {
	var attrs []string
	for _, a := range strings.Split(cfg.LDAPAddressAttrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			attrs = append(attrs, a)
		}
	}
	b, err := auth.NewLDAPBackend(auth.LDAPConfig{
		URL:          cfg.LDAPURL,
		StartTLS:     cfg.LDAPStartTLS,
		CAFile:       cfg.LDAPCAFile,
		BindDN:       cfg.LDAPBindDN,
		BindPassword: cfg.LDAPBindPassword,
		BaseDN:       cfg.LDAPBaseDN,
		Filter:       cfg.LDAPFilter,
		AddressAttrs: attrs,
		Timeout:      cfg.LDAPTimeout,
	}, log.With("part", "auth"))
	if err != nil {
		return nil, fmt.Errorf("RELAY_LDAP_*: %w", err)
	}
	// Say at start whether the directory answers; an outage is not fatal
	// (clients get 454 4.7.0 until it is back).
	pctx, cancel := context.WithTimeout(context.Background(), cfg.LDAPTimeout)
	defer cancel()
	if err := b.Ping(pctx); err != nil {
		log.Warn("LDAP directory not reachable at start; AUTH answers 454 4.7.0 until it is", "url", cfg.LDAPURL, "err", err)
	} else {
		log.Info("LDAP directory reachable", "url", cfg.LDAPURL)
	}
	return b, nil
}

type oidcBackend interface {
	auth.TokenBackend
	auth.PasswordBackend
}

func newOIDCBackend(ctx context.Context, cfg *Config, log *slog.Logger) (oidcBackend, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := auth.NewOIDCBackend(dctx, auth.OIDCConfig{
		Issuer:        cfg.OIDCIssuer,
		Audience:      cfg.OIDCAudience,
		UserClaim:     cfg.OIDCUserClaim,
		AddressClaim:  cfg.OIDCAddressClaim,
		PasswordGrant: cfg.OIDCPasswordGrant,
		ClientID:      cfg.OIDCClientID,
		ClientSecret:  cfg.OIDCClientSecret,
	}, log.With("part", "auth"))
	if err != nil {
		return nil, fmt.Errorf("RELAY_OIDC_*: %w", err)
	}
	return b, nil
}

func openSQS(ctx context.Context, cfg *Config, log *slog.Logger) (queue.Queue, []string, func(), error) {
	return nil, nil, nil, errors.New("RELAY_QUEUE: sqs is not available in this build yet")
}

func openBounceStore(ctx context.Context, cfg *Config, queueDirs []string) (outbound.BounceStore, error) {
	return outbound.OpenBounceStore(cfg.BounceStore, outbound.BounceStoreOptions{QueueDirs: queueDirs})
}
