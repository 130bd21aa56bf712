package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
	"github.com/edgerelay/edgerelay/queue/sqs"
	"github.com/edgerelay/edgerelay/relay"
)

// wire.go builds every part from Config: the queue, the identity backends,
// the bounce store, the delivery worker and the submission server. serve.go
// runs them.

// queueParts is the opened queue and what the bounce store needs to know
// about it.
type queueParts struct {
	q     queue.Queue
	close func()
	// dirs are the local directories the queue owns (the bounce store may
	// be none of them, in none of them, and contain none of them).
	dirs []string
	// s3Bounce opens an s3:// bounce store with the queue's S3 client (nil
	// without RELAY_QUEUE=sqs).
	s3Bounce func(bucket, prefix string) (bounce.Store, error)
}

// openQueue opens the configured queue backend.
func openQueue(ctx context.Context, cfg *Config, log *slog.Logger) (*queueParts, error) {
	if cfg.Queue == QueueSQS {
		return openSQS(ctx, cfg, log)
	}
	dir := cfg.DataDir + "/spool"
	sp, err := spool.Open(dir, spool.Options{
		Logger:             log.With("part", "queue"),
		LeaseTimeout:       cfg.SpoolLeaseTimeout,
		MaxDeliveryCrashes: cfg.MaxDeliveryCrashes,
	})
	if err != nil {
		return nil, fmt.Errorf("RELAY_DATA_DIR: spool %s: %w", dir, err)
	}
	return &queueParts{q: sp, dirs: []string{dir}, close: func() { sp.Close() }}, nil
}

func newSubmission(ctx context.Context, cfg *Config, q queue.Queue, log *slog.Logger, obs *metrics) (*relay.Server, *auth.Authenticator, error) {
	tlsCfg, selfSigned, err := submissionTLS(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_TLS_CERT_FILE/RELAY_TLS_KEY_FILE: %w", err)
	}
	if selfSigned {
		log.Warn("no RELAY_TLS_CERT_FILE: using a self-signed certificate made at start; clients will warn", "hostname", cfg.Hostname)
	}
	if cfg.InsecureAuth {
		log.Warn("RELAY_INSECURE_AUTH=true: passwords may be sent without TLS; development only")
	}
	a, books, err := newAuthenticator(ctx, cfg, log, obs)
	if err != nil {
		return nil, nil, err
	}
	scan, err := newScan(ctx, cfg, log, obs)
	if err != nil {
		return nil, nil, err
	}
	srv, err := relay.New(relay.Options{
		Hostname:             cfg.Hostname,
		TLSConfig:            tlsCfg,
		InsecureAuth:         cfg.InsecureAuth,
		Auth:                 a,
		Queue:                q,
		MaxMessageBytes:      cfg.MaxMessageBytes,
		MaxRecipients:        cfg.MaxRecipients,
		MaxRecipientsPerHour: cfg.MaxRecipientsPerHour,
		CheckHeaderFrom:      cfg.CheckHeaderFrom,
		IdleTimeout:          cfg.IdleTimeout,
		MaxSessionDuration:   cfg.MaxSession,
		PreAuthTimeout:       cfg.PreAuthTimeout,
		MaxConnections:       cfg.MaxConnections,
		MaxConnectionsPerIP:  cfg.MaxConnectionsPerIP,
		ProxyProtocolFrom:    cfg.proxies,
		Logger:               log.With("part", "submission"),
		Observe:              obs.observeAccept,
		Scan:                 scan,
		MX:                   newMX(cfg, books, log),

		AllowAddressInDisplayName: cfg.FromDisplayNameAddress == "allow",
	})
	if err != nil {
		return nil, nil, err
	}
	if scan != nil {
		obs.addScan(srv.ScanStats)
	}
	if cfg.MXAddr != "" {
		if _, err := srv.ListenMX(cfg.MXAddr); err != nil {
			srv.Shutdown(context.Background())
			return nil, nil, fmt.Errorf("RELAY_MX_ADDR: %w", err)
		}
	}
	return srv, a, nil
}

// newAuthenticator builds the identity backends, and returns those that
// list addresses (for the MX listener's recipient check) too.
func newAuthenticator(ctx context.Context, cfg *Config, log *slog.Logger, obs *metrics) (*auth.Authenticator, auth.Addresses, error) {
	var books auth.Addresses
	o := auth.Options{
		Logger:        log.With("part", "auth"),
		MaxFailures:   cfg.AuthMaxFailures,
		FailureWindow: cfg.AuthFailureWindow,
		CacheTTL:      cfg.AuthCacheTTL,
		Observe:       obs.observeAuth,
	}
	for _, b := range cfg.backends {
		switch b {
		case "file":
			fb, err := auth.NewFileBackend(cfg.AuthFile, log.With("part", "auth"))
			if err != nil {
				return nil, nil, fmt.Errorf("RELAY_AUTH_FILE: %w", err)
			}
			o.Password = append(o.Password, fb)
			books = append(books, fb)
		case "ldap":
			lb, err := newLDAPBackend(cfg, log)
			if err != nil {
				return nil, nil, err
			}
			o.Password = append(o.Password, lb)
			if ab, ok := lb.(auth.AddressBook); ok {
				books = append(books, ab)
			}
		case "oidc":
			ob, err := newOIDCBackend(ctx, cfg, log)
			if err != nil {
				return nil, nil, err
			}
			o.Token = append(o.Token, ob)
			if cfg.OIDCPasswordGrant {
				o.Password = append(o.Password, ob)
			}
		}
	}
	return auth.New(o), books, nil
}

// readier is a part that can tell /readyz whether it can work now.
type readier interface {
	Ready(context.Context) error
}

// newWorker builds the delivery worker and returns it with its bounce store.
func newWorker(cfg *Config, qp *queueParts, log *slog.Logger, obs *metrics) (*outbound.Worker, bounce.Store, error) {
	q := qp.q
	store, err := openBounceStore(cfg, qp)
	if err != nil {
		return nil, nil, err
	}
	log.Info("bounce store opened", "store", store.String())
	rep, err := outbound.NewReporter(outbound.ReporterOptions{
		Hostname: cfg.Hostname,
		From:     cfg.BounceFrom,
		Store:    store,
		Queue:    q,
		ToSender: cfg.BounceToSender,
		Logger:   log.With("part", "reports"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_BOUNCE_FROM: %w", err)
	}
	var roots *x509.CertPool
	if cfg.GatewayCAFile != "" {
		pem, err := os.ReadFile(cfg.GatewayCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("RELAY_GATEWAY_CA_FILE: %w", err)
		}
		roots, err = x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("RELAY_GATEWAY_CA_FILE: %s holds no PEM certificate", cfg.GatewayCAFile)
		}
	}
	gateways, routes, err := cfg.outboundGateways(context.Background(), roots) // config_gateway_plan.go
	if err != nil {
		return nil, nil, err
	}
	w, err := outbound.New(outbound.Options{
		Queue:          q,
		Hostname:       cfg.Hostname,
		Gateways:       gateways,
		Routes:         routes,
		GatewayBackoff: cfg.GatewayBackoff,
		ObserveGateway: obs.observeGateway,
		MXAllowPrivate: cfg.MXAllowPrivate,
		InboundGateway: cfg.InboundGateway,
		LocalDomains:   cfg.localDomains,
		Concurrency:    cfg.DeliveryConcurrency,
		RetrySchedule:  cfg.retrySchedule,
		QueueLifetime:  cfg.QueueLifetime,
		DelayWarning:   cfg.DelayWarning, // 0: off, as in the worker
		ShutdownGrace:  cfg.ShutdownGrace,
		Reporter:       rep,
		Logger:         log.With("part", "delivery"),
		Observe:        obs.observeAttempt,
	})
	return w, store, err
}

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
