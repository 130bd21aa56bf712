package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
	"github.com/edgerelay/edgerelay/queue/sqs"
	"github.com/edgerelay/edgerelay/relay"
)

// serve wires the parts for cfg.Role and runs them until ctx is cancelled
// (SIGTERM/SIGINT), then drains: listeners stop, sessions in progress get
// up to RELAY_SHUTDOWN_GRACE, deliveries in flight finish or stay queued.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	log.Info("edgerelay starting", "version", versionString(), "hostname", cfg.Hostname, "role", cfg.Role, "queue", cfg.Queue)
	if !strings.Contains(cfg.Hostname, ".") {
		// In a container the host name is a random ID: next hops may refuse
		// it in EHLO, and reports and Message-IDs would carry it.
		log.Warn("RELAY_HOSTNAME is not a fully qualified domain name; set it to this service's public name", "hostname", cfg.Hostname)
	}

	qp, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer qp.close()
	q := qp.q

	var (
		srv    *relay.Server
		worker *outbound.Worker
		// ready are the parts /readyz asks (issue 8 item 16).
		ready []readyCheck
	)
	if r, ok := q.(readier); ok {
		ready = append(ready, readyCheck{"queue", r.Ready})
	}
	if cfg.Role == "all" || cfg.Role == "worker" {
		var store bounce.Store
		worker, store, err = newWorker(cfg, qp, log)
		if err != nil {
			return err
		}
		if r, ok := store.(readier); ok {
			ready = append(ready, readyCheck{"bounce_store", r.Ready})
		}
	}
	if cfg.Role == "all" || cfg.Role == "submission" {
		var ids *auth.Authenticator
		srv, ids, err = newSubmission(ctx, cfg, q, log)
		if err != nil {
			return err
		}
		ready = append(ready, readyCheck{"identity", ids.Ready})
		for _, l := range []struct {
			addr     string
			implicit bool
			name     string
		}{{cfg.SubmissionAddr, false, "RELAY_SUBMISSION_ADDR"}, {cfg.SubmissionsAddr, true, "RELAY_SUBMISSIONS_ADDR"}} {
			if l.addr == "" {
				continue
			}
			if _, err := srv.Listen(l.addr, l.implicit); err != nil {
				srv.Shutdown(context.Background())
				return fmt.Errorf("%s: %w", l.name, err)
			}
		}
	}

	var draining bool
	var mu sync.Mutex
	var httpSrv *http.Server
	if cfg.HTTPAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "ok")
		})
		mux.HandleFunc("GET /readyz", readyHandler(ready, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return draining
		}, readyTimeout))
		var queueLen func() int
		if sp, ok := q.(*spool.Spool); ok {
			queueLen = sp.Len
		}
		var crashQuarantined func() uint64
		switch qq := q.(type) {
		case *spool.Spool:
			crashQuarantined = func() uint64 { return qq.Stats().CrashQuarantined }
		case *sqs.Queue:
			crashQuarantined = func() uint64 { return qq.Stats().CrashQuarantined }
		}
		mux.Handle("GET /metrics", metricsHandler(srv, worker, queueLen, crashQuarantined))
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			if srv != nil {
				srv.Shutdown(context.Background())
			}
			return fmt.Errorf("RELAY_HTTP_ADDR: %w", err)
		}
		var capped net.Listener
		httpSrv, capped = newHTTPServer(mux, ln, defaultHTTPLimits)
		go httpSrv.Serve(capped)
		log.Info("http listening", "addr", ln.Addr().String())
	}

	// workerDone stays nil (never ready) without a worker.
	var workerDone chan error
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	if worker != nil {
		workerDone = make(chan error, 1)
		go func() { workerDone <- worker.Run(workCtx) }()
	}

	log.Info("edgerelay ready")
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	case err := <-workerDone:
		// The worker only stops on its own when something is badly wrong.
		if srv != nil {
			srv.Shutdown(context.Background())
		}
		return fmt.Errorf("delivery worker stopped: %w", err)
	}
	mu.Lock()
	draining = true
	mu.Unlock()

	// Drain the front end and the worker in parallel, both bounded.
	var wg sync.WaitGroup
	if srv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("submission shutdown", "err", err)
			}
		}()
	}
	stopWork()
	wg.Wait()
	if workerDone != nil {
		if err := <-workerDone; err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("delivery worker shutdown", "err", err)
		}
	}
	if httpSrv != nil {
		hctx, cancel := context.WithTimeout(context.Background(), time.Second)
		httpSrv.Shutdown(hctx)
		cancel()
	}
	log.Info("edgerelay stopped")
	return nil
}

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
	if cfg.Queue == "sqs" {
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

func newSubmission(ctx context.Context, cfg *Config, q queue.Queue, log *slog.Logger) (*relay.Server, *auth.Authenticator, error) {
	tlsCfg, selfSigned, err := relay.TLSConfig(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Hostname)
	if err != nil {
		return nil, nil, fmt.Errorf("RELAY_TLS_CERT_FILE/RELAY_TLS_KEY_FILE: %w", err)
	}
	if selfSigned {
		log.Warn("no RELAY_TLS_CERT_FILE: using a self-signed certificate made at start; clients will warn", "hostname", cfg.Hostname)
	}
	if cfg.InsecureAuth {
		log.Warn("RELAY_INSECURE_AUTH=true: passwords may be sent without TLS; development only")
	}
	a, err := newAuthenticator(ctx, cfg, log)
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

		AllowAddressInDisplayName: cfg.FromDisplayNameAddress == "allow",
	})
	return srv, a, err
}

func newAuthenticator(ctx context.Context, cfg *Config, log *slog.Logger) (*auth.Authenticator, error) {
	o := auth.Options{
		Logger:        log.With("part", "auth"),
		MaxFailures:   cfg.AuthMaxFailures,
		FailureWindow: cfg.AuthFailureWindow,
		CacheTTL:      cfg.AuthCacheTTL,
	}
	for _, b := range cfg.backends {
		switch b {
		case "file":
			fb, err := auth.NewFileBackend(cfg.AuthFile, log.With("part", "auth"))
			if err != nil {
				return nil, fmt.Errorf("RELAY_AUTH_FILE: %w", err)
			}
			o.Password = append(o.Password, fb)
		case "ldap":
			lb, err := newLDAPBackend(cfg, log)
			if err != nil {
				return nil, err
			}
			o.Password = append(o.Password, lb)
		case "oidc":
			ob, err := newOIDCBackend(ctx, cfg, log)
			if err != nil {
				return nil, err
			}
			o.Token = append(o.Token, ob)
			if cfg.OIDCPasswordGrant {
				o.Password = append(o.Password, ob)
			}
		}
	}
	return auth.New(o), nil
}

// readier is a part that can tell /readyz whether it can work now.
type readier interface {
	Ready(context.Context) error
}

// newWorker builds the delivery worker and returns it with its bounce store.
func newWorker(cfg *Config, qp *queueParts, log *slog.Logger) (*outbound.Worker, bounce.Store, error) {
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
	delayWarning := cfg.DelayWarning
	if delayWarning == 0 {
		delayWarning = -1 // outbound: negative disables
	}
	w, err := outbound.New(outbound.Options{
		Queue:            q,
		Hostname:         cfg.Hostname,
		Gateway:          cfg.Gateway,
		GatewayTLS:       cfg.GatewayTLS,
		GatewayUsername:  cfg.GatewayUsername,
		GatewayPassword:  cfg.GatewayPassword,
		GatewayTLSVerify: cfg.GatewayTLSVerify,
		GatewayRootCAs:   roots,
		MXAllowPrivate:   cfg.MXAllowPrivate,
		Concurrency:      cfg.DeliveryConcurrency,
		RetrySchedule:    cfg.retrySchedule,
		QueueLifetime:    cfg.QueueLifetime,
		DelayWarning:     delayWarning,
		ShutdownGrace:    cfg.ShutdownGrace,
		Reporter:         rep,
		Logger:           log.With("part", "delivery"),
	})
	return w, store, err
}
