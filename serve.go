package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/outbound"
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
	adm, stopAdmin := startAdmin(cfg, q, log) // edgerelay queue … (adminwire.go)
	defer stopAdmin()

	var (
		srv    *relay.Server
		worker *outbound.Worker
		// ready are the parts /readyz asks (issue 8 item 16).
		ready []readyCheck
		// obs is /metrics: the parts' hooks feed it from the start.
		obs = newMetrics()
	)
	switch qq := q.(type) {
	case *spool.Spool:
		obs.addSpool(qq, time.Now)
	case *sqs.Queue:
		obs.addSQS(qq)
	}
	if r, ok := q.(readier); ok {
		ready = append(ready, readyCheck{"queue", r.Ready})
	}
	if cfg.Role.delivers() {
		var store bounce.Store
		worker, store, err = newWorker(cfg, qp, log, obs)
		if err != nil {
			return err
		}
		obs.addWorker(worker)
		ready = append(ready, gatewayCheck(worker, cfg.Role, time.Now)) // ready_gateway.go
		if r, ok := store.(readier); ok {
			ready = append(ready, readyCheck{"bounce_store", r.Ready})
		}
	}
	// The certificate by ACME: ordered in the background, never waited for.
	if cfg.acme, err = newACME(ctx, cfg, log, obs); err != nil {
		return err
	}
	if cfg.acme != nil {
		defer cfg.acme.Stop()
		ready = append(ready, readyCheck{"certificate", cfg.acme.Ready})
	}
	if cfg.Role.submits() {
		var ids *auth.Authenticator
		srv, ids, err = newSubmission(ctx, cfg, q, log, obs)
		if err != nil {
			return err
		}
		obs.addSubmission(srv)
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
		mux.Handle("GET /metrics", obs.handler())
		mux.Handle("/admin/", adminHTTP(cfg, adm))
		if cfg.Pprof {
			mountPprof(mux)
			log.Warn("RELAY_PPROF: the profiler is served under /debug/pprof/ on the HTTP listener", "addr", cfg.HTTPAddr)
		}
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
