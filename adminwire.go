package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/edgerelay/edgerelay/internal/admin"
	"github.com/edgerelay/edgerelay/queue"
)

// startAdmin serves the operator's commands (edgerelay queue …) on
// $RELAY_DATA_DIR/admin.sock when the queue has a queue.Admin (the spool;
// SQS + S3 too). It runs after openQueue, so with the spool the process
// already holds the spool's lock; the socket has its own lock file as
// well (admin.Listen), which is what keeps a second process sharing the
// directory (SQS) from removing the first one's socket. A socket that
// cannot be made is an ERROR, not a failed start: mail keeps flowing, and
// edgerelay queue says that no process answers. stop closes and removes
// it (waiting at most 2 s for answers in progress). srv is nil without
// a queue.Admin.
func startAdmin(cfg *Config, q queue.Queue, log *slog.Logger) (srv *admin.Server, stop func()) {
	a, ok := q.(queue.Admin)
	if !ok {
		return nil, func() {}
	}
	srv = &admin.Server{Admin: a, Logger: log.With("part", "admin")}
	path := filepath.Join(cfg.DataDir, adminSocketName)
	sock, err := admin.Listen(path)
	if err != nil {
		hint := ""
		if errors.Is(err, admin.ErrSocketInUse) {
			hint = " (another edgerelay uses this RELAY_DATA_DIR)"
		}
		log.Error("RELAY_DATA_DIR: the operator's socket cannot be made; edgerelay queue will not reach this process"+hint,
			"socket", path, "err", err)
		return srv, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(sock); err != nil {
			log.Error("admin socket stopped", "socket", path, "err", err)
		}
	}()
	log.Info("operator socket listening", "socket", path)
	return srv, func() {
		// Answers in progress get a moment; a client reading slowly does
		// not hold the shutdown (the process ends them).
		sock.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			log.Warn("operator requests still running at shutdown; cut off", "socket", path)
		}
	}
}

// adminHTTP is the /admin/ handler of the HTTP listener: the operations
// behind RELAY_ADMIN_TOKEN (bearer, compared in constant time), or, when
// no token is set, 404 for everything under /admin/ (decided: the API is
// off rather than forbidden; the body says how to turn it on).
func adminHTTP(cfg *Config, srv *admin.Server) http.Handler {
	if cfg.AdminToken == "" || srv == nil {
		why := "RELAY_ADMIN_TOKEN is not set"
		if srv == nil {
			why = "this queue has no operator commands"
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("404 not found: /admin/ is off (%s)", why), http.StatusNotFound)
		})
	}
	return admin.Handler(cfg.AdminToken, srv)
}
