package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/caddyserver/certmagic"

	"github.com/edgerelay/edgerelay/internal/acme"
	"github.com/edgerelay/edgerelay/relay"
)

// acme_wire.go builds the ACME certificate manager from RELAY_ACME_* and
// gives the submission listeners its TLS configuration.

// acmeTuning are the test seams: certmagic's renewal window and check
// interval, the S3 lock's and Route 53's poll intervals. Zero values are the defaults
// (renewal at two thirds of the lifetime, checked every 10 minutes).
var acmeTuning struct {
	renewalWindowRatio float64
	renewCheckInterval time.Duration
	lockPoll           time.Duration
	route53Poll        time.Duration
}

// newACME builds and starts the certificate manager (nil without
// RELAY_ACME). It never waits for the ACME server; it fails only on a
// storage or configuration problem, naming the variable.
func newACME(ctx context.Context, cfg *Config, log *slog.Logger, obs *metrics) (*acme.Manager, error) {
	if !cfg.ACME || !cfg.Role.submits() {
		return nil, nil
	}
	log = log.With("part", "acme")
	fallback, err := relay.SelfSigned(cfg.acmeDomains[0])
	if err != nil {
		return nil, err
	}
	o := acme.Options{
		Domains:            cfg.acmeDomains,
		Email:              cfg.ACMEEmail,
		Directory:          cfg.ACMEDirectory,
		Challenge:          cfg.ACMEChallenge,
		Logger:             log,
		Fallback:           &fallback,
		RenewalWindowRatio: acmeTuning.renewalWindowRatio,
		RenewCheckInterval: acmeTuning.renewCheckInterval,
	}
	if cfg.ACMECAFile != "" {
		if o.Roots, err = acmeRoots(cfg.ACMECAFile); err != nil {
			return nil, fmt.Errorf("RELAY_ACME_CA_FILE: %w", err)
		}
	}
	addr, addrVar := cfg.ACMETLSAddr, "RELAY_ACME_TLS_ADDR"
	switch cfg.ACMEChallenge {
	case acme.HTTP01:
		addr, addrVar = cfg.ACMEHTTPAddr, "RELAY_ACME_HTTP_ADDR"
	case acme.DNS01:
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("RELAY_ACME_ROUTE53_ZONE_ID (AWS configuration): %w", err)
		}
		o.DNS01 = &acme.Route53Solver{Client: route53.NewFromConfig(awsCfg), ZoneID: strings.TrimSpace(cfg.ACMERoute53ZoneID), Poll: acmeTuning.route53Poll, Logger: log}
		addr = "none (dns-01, Route 53 zone " + cfg.ACMERoute53ZoneID + ")"
	}
	if cfg.ACMEChallenge != acme.DNS01 {
		if o.ListenHost, o.Port, err = acmeListen(addr); err != nil {
			return nil, fmt.Errorf("%s: %w", addrVar, err)
		}
	}
	where := ""
	if cfg.Queue == QueueSQS {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("RELAY_ACME (S3 storage): %w", err)
		}
		st := acme.NewS3Storage(s3.NewFromConfig(awsCfg), cfg.S3Bucket, cfg.ACMES3Prefix)
		st.PollInterval = acmeTuning.lockPoll
		st.SSE, st.KMSKeyID = cfg.S3SSE, cfg.S3KMSKeyID // as the queue's objects
		o.Storage, where = st, st.String()
	} else {
		dir := filepath.Join(cfg.DataDir, "acme")
		o.Storage, where = &certmagic.FileStorage{Path: dir}, dir
	}
	m, err := acme.New(o)
	if err != nil {
		return nil, fmt.Errorf("RELAY_ACME: %w", err)
	}
	if err := m.Listen(); err != nil {
		m.Stop()
		return nil, fmt.Errorf("%s: challenge listener: %w", addrVar, err)
	}
	if ca := m.ChallengeAddr(); ca != nil {
		addr = ca.String()
	}
	log.Info("ACME: managing the certificate in the background; a self-signed one is served until it is in place",
		"domains", cfg.acmeDomains, "directory", cfg.ACMEDirectory, "challenge", cfg.ACMEChallenge,
		"challenge_addr", addr, "storage", where)
	if err := m.Start(ctx); err != nil {
		m.Stop()
		return nil, fmt.Errorf("RELAY_ACME: storage %s: %w", where, err)
	}
	obs.addACME(m)
	return m, nil
}

// addACME registers the certificate's expiry and the failure count.
func (m *metrics) addACME(a *acme.Manager) {
	m.gauge("edgerelay_certificate_expiry_timestamp_seconds",
		"Unix time at which the ACME certificate in service expires (the earliest of its names); 0 before the first is in place.",
		func() float64 {
			t, ok := a.NotAfter()
			if !ok {
				return 0
			}
			return float64(t.Unix())
		})
	m.counter("edgerelay_acme_failures_total", "ACME orders and renewals that failed (each is retried with back-off).",
		func() uint64 { return uint64(a.Failures()) })
}

// submissionTLS is the submission listeners' TLS configuration: the ACME
// manager's when RELAY_ACME is on, else the files' or a self-signed one.
func submissionTLS(cfg *Config) (*tls.Config, bool, error) {
	if cfg.acme != nil {
		return cfg.acme.TLSConfig(), false, nil
	}
	return relay.TLSConfig(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Hostname)
}
