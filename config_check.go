package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// shortDuration writes d as a person would: 4h, not 4h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// validate checks values and fills in derived defaults.
func (c *Config) validate() error {
	var errs []string
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s_%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			bad("HOSTNAME", "not set and the host name is unknown")
		}
		c.Hostname = h
	}
	if strings.ContainsAny(c.Hostname, " \t\r\n<>@()[]") {
		bad("HOSTNAME", "%q is not a host name", c.Hostname)
	}
	// Slices, not maps: several errors always print in the same order.
	for _, l := range []struct{ name, addr string }{
		{"SUBMISSION_ADDR", c.SubmissionAddr},
		{"SUBMISSIONS_ADDR", c.SubmissionsAddr},
		{"HTTP_ADDR", c.HTTPAddr},
	} {
		name, addr := l.name, l.addr
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "%q is not host:port or :port", addr)
		}
	}
	if c.Pprof && c.HTTPAddr == "" {
		bad("PPROF", "needs RELAY_HTTP_ADDR, the listener it is served on")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "RELAY_TLS_CERT_FILE and RELAY_TLS_KEY_FILE go together")
	}
	switch c.Role {
	case RoleAll, RoleSubmission, RoleWorker:
	default:
		bad("ROLE", "%q: want all, submission or worker", c.Role)
	}
	if c.SpoolLeaseTimeout < time.Second || c.SpoolLeaseTimeout > 12*time.Hour {
		bad("SPOOL_LEASE_TIMEOUT", "must be between 1s and 12h")
	}
	if c.MaxDeliveryCrashes < 1 {
		bad("MAX_DELIVERY_CRASHES", "must be at least 1")
	}
	switch c.Queue {
	case QueueSpool:
		if c.Role == RoleSubmission || c.Role == RoleWorker {
			bad("ROLE", "%q needs a shared queue (RELAY_QUEUE=sqs); the local spool works only with RELAY_ROLE=all", c.Role)
		}
	case QueueSQS:
		if c.SQSQueueURL == "" {
			bad("SQS_QUEUE_URL", "required with RELAY_QUEUE=sqs")
		}
		if c.S3Bucket == "" {
			bad("S3_BUCKET", "required with RELAY_QUEUE=sqs")
		}
		if c.SQSVisibilityTimeout < 3*time.Second || c.SQSVisibilityTimeout > 12*time.Hour {
			bad("SQS_VISIBILITY_TIMEOUT", "must be between 3s and 12h (the SQS maximum)")
		}
		switch c.S3SSE {
		case "", "AES256":
		case "aws:kms":
		default:
			bad("S3_SSE", "%q: want AES256 or aws:kms", c.S3SSE)
		}
	default:
		bad("QUEUE", "%q: want spool or sqs", c.Queue)
	}
	if c.DataDir == "" {
		bad("DATA_DIR", "must not be empty")
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.AuthFile == "" {
		c.AuthFile = filepath.Join(c.DataDir, "users")
	}
	if c.BounceStore == "" {
		c.BounceStore = "maildir:" + filepath.Join(c.DataDir, "bounces")
	}
	if !strings.HasPrefix(c.BounceStore, "maildir:") && !strings.HasPrefix(c.BounceStore, "s3://") {
		bad("BOUNCE_STORE", "%q: want maildir:PATH or s3://bucket/prefix", c.BounceStore)
	}

	c.validateIdentity(bad)
	c.validateScan(bad)
	c.validateACME(bad)
	c.readSecretFiles(bad)
	c.validateOAuth(bad)
	c.validateAdminToken(bad)
	if c.AuthMaxFailures < 1 {
		bad("AUTH_MAX_FAILURES", "must be at least 1")
	}
	if c.AuthFailureWindow <= 0 {
		bad("AUTH_FAILURE_WINDOW", "must be positive")
	}
	if c.AuthCacheTTL < 0 {
		bad("AUTH_CACHE_TTL", "must not be negative")
	}
	if c.FromDisplayNameAddress != "refuse" && c.FromDisplayNameAddress != "allow" {
		bad("FROM_DISPLAY_NAME_ADDRESS", "%q: want refuse or allow", c.FromDisplayNameAddress)
	}
	if c.MaxMessageBytes < 1024 {
		bad("MAX_MESSAGE_BYTES", "%d is too small", c.MaxMessageBytes)
	}
	if c.MaxRecipientsPerHour < 0 {
		bad("MAX_RECIPIENTS_PER_HOUR", "must not be negative")
	}
	if c.MaxRecipients < 1 {
		bad("MAX_RECIPIENTS", "must be at least 1")
	}
	if c.IdleTimeout < time.Second {
		bad("IDLE_TIMEOUT", "must be at least 1s")
	}
	if c.MaxSession < c.IdleTimeout {
		bad("MAX_SESSION", "must be at least RELAY_IDLE_TIMEOUT")
	}
	if c.PreAuthTimeout < time.Second {
		bad("PREAUTH_TIMEOUT", "must be at least 1s")
	}
	c.proxies = nil
	for _, p := range strings.Split(c.ProxyProtocolFrom, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			bad("PROXY_PROTOCOL_FROM", "%q is not a CIDR prefix such as 10.0.0.0/8", p)
			continue
		}
		c.proxies = append(c.proxies, pfx.Masked())
	}
	if c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 {
		bad("MAX_CONNECTIONS", "must not be negative")
	}
	switch c.GatewayTLS {
	case "starttls", "tls", "none":
	default:
		bad("GATEWAY_TLS", "%q: want starttls, tls or none", c.GatewayTLS)
	}
	c.gatewayPlan(bad) // RELAY_GATEWAY, RELAY_ROUTES and their credentials (config_gateway*.go)
	if c.GatewayUsername != "" && c.GatewayPassword == "" && !c.oauthSet() {
		bad("GATEWAY_PASSWORD", "required with RELAY_GATEWAY_USERNAME")
	}
	if c.DeliveryConcurrency < 1 {
		bad("DELIVERY_CONCURRENCY", "must be at least 1")
	}
	if s, err := parseSchedule(c.RetrySchedule); err != nil {
		bad("RETRY_SCHEDULE", "%v", err)
	} else {
		c.retrySchedule = s
	}
	if c.QueueLifetime < time.Minute {
		bad("QUEUE_LIFETIME", "must be at least 1m")
	}
	if c.DelayWarning < 0 || c.DelayWarning >= c.QueueLifetime && c.DelayWarning != 0 {
		if c.set[envPrefix+"_DELAY_WARNING"] {
			bad("DELAY_WARNING", "%s must be 0 (off) or less than RELAY_QUEUE_LIFETIME (%s)", shortDuration(c.DelayWarning), shortDuration(c.QueueLifetime))
		} else {
			bad("DELAY_WARNING", "not set, so its default %s applies, which must be less than RELAY_QUEUE_LIFETIME (%s): set RELAY_DELAY_WARNING below it, or 0 for no delay warning", configDefault("DelayWarning"), shortDuration(c.QueueLifetime))
		}
	}
	if c.BounceFrom != "" && !strings.Contains(c.BounceFrom, "@") {
		bad("BOUNCE_FROM", "%q is not an address", c.BounceFrom)
	}
	if c.ShutdownGrace < 0 {
		bad("SHUTDOWN_GRACE", "must not be negative")
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		bad("LOG_FORMAT", "%q: want auto, text or json", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Role != RoleWorker && c.SubmissionAddr == "" && c.SubmissionsAddr == "" {
		bad("SUBMISSION_ADDR", "both submission listeners are disabled; nothing would accept mail")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
