package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/queue/sqs"
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
	if strings.HasPrefix(cfg.LDAPURL, "ldap://") && !cfg.LDAPStartTLS {
		log.Warn("RELAY_LDAP_URL is ldap:// without RELAY_LDAP_STARTTLS: user passwords go to the directory unencrypted", "url", cfg.LDAPURL)
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

// oidcList splits a comma-separated RELAY_OIDC_ALLOWED_* value.
func oidcList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

type oidcBackend interface {
	auth.TokenBackend
	auth.PasswordBackend
}

func newOIDCBackend(ctx context.Context, cfg *Config, log *slog.Logger) (oidcBackend, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := auth.NewOIDCBackend(dctx, auth.OIDCConfig{
		Issuer:         cfg.OIDCIssuer,
		Audience:       cfg.OIDCAudience,
		UserClaim:      cfg.OIDCUserClaim,
		AddressClaim:   cfg.OIDCAddressClaim,
		PasswordGrant:  cfg.OIDCPasswordGrant,
		ClientID:       cfg.OIDCClientID,
		ClientSecret:   cfg.OIDCClientSecret,
		AllowedDomains: oidcList(cfg.OIDCAllowedDomains),
		AllowedTenants: oidcList(cfg.OIDCAllowedTenants),
	}, log.With("part", "auth"))
	if err != nil {
		return nil, fmt.Errorf("RELAY_OIDC_*: %w", err)
	}
	return b, nil
}

// openSQS opens the SQS + S3 queue with the AWS SDK's standard
// configuration and checks, before anything is accepted, that the queue and
// the bucket are there and usable.
func openSQS(ctx context.Context, cfg *Config, log *slog.Logger) (*queueParts, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("RELAY_QUEUE=sqs: AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("RELAY_QUEUE=sqs: AWS_REGION is not set")
	}
	s3c := s3.NewFromConfig(awsCfg)
	q, err := sqs.Open(ctx, sqs.Options{
		SQS:                awssqs.NewFromConfig(awsCfg),
		S3:                 s3c,
		QueueURL:           cfg.SQSQueueURL,
		Bucket:             cfg.S3Bucket,
		Prefix:             cfg.S3Prefix,
		SSE:                cfg.S3SSE,
		KMSKeyID:           cfg.S3KMSKeyID,
		BatchSends:         true,
		VisibilityTimeout:  cfg.SQSVisibilityTimeout,
		MaxDeliveryCrashes: cfg.MaxDeliveryCrashes,
		MinRetention:       cfg.QueueLifetime,
		Logger:             log.With("part", "queue"),
	})
	if err != nil {
		return nil, fmt.Errorf("RELAY_SQS_QUEUE_URL/RELAY_S3_*: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := q.Check(cctx); err != nil {
		q.Close()
		switch {
		case errors.Is(err, sqs.ErrNoSuchQueue):
			return nil, fmt.Errorf("RELAY_QUEUE=sqs: %w (check RELAY_SQS_QUEUE_URL and AWS_REGION)", err)
		case errors.Is(err, sqs.ErrNoSuchBucket):
			return nil, fmt.Errorf("RELAY_QUEUE=sqs: %w (check RELAY_S3_BUCKET)", err)
		}
		return nil, fmt.Errorf("RELAY_QUEUE=sqs: %w", err)
	}
	log.Info("queue ready", "queue", q.String())
	return &queueParts{
		q:     q,
		close: func() { q.Close() },
		s3Bounce: func(bucket, prefix string) (bounce.Store, error) {
			return bounce.NewS3(ctx, s3c, bucket, prefix, cfg.S3Bucket, cfg.S3Prefix)
		},
	}, nil
}

func openBounceStore(cfg *Config, qp *queueParts) (bounce.Store, error) {
	st, err := bounce.Open(cfg.BounceStore, bounce.Options{QueueDirs: qp.dirs, S3: qp.s3Bounce})
	switch {
	case errors.Is(err, bounce.ErrNoS3Client):
		return nil, fmt.Errorf("RELAY_BOUNCE_STORE: %w: an s3 bounce store requires RELAY_QUEUE=sqs (the S3 client is set up with the SQS + S3 queue); use maildir:PATH with the spool queue", err)
	case err != nil:
		return nil, fmt.Errorf("RELAY_BOUNCE_STORE: %w", err)
	}
	return st, nil
}
