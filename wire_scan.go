package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay"
)

// wire_scan.go builds the parts of issue 11 from Config: virus scanning
// with clamd and the inbound MX listener (newSubmission uses both).

// newScan builds the virus scanning from RELAY_CLAMD_* (nil when
// RELAY_CLAMD_ADDR is empty), and says at start which limit and which
// policies apply and whether clamd answers; clamd down at start is no
// reason not to start (messages get what RELAY_CLAMD_FAIL_OPEN says).
func newScan(ctx context.Context, cfg *Config, log *slog.Logger, obs *metrics) (*relay.ScanOptions, error) {
	if cfg.ClamdAddr == "" {
		return nil, nil
	}
	c, err := relay.NewClamd(cfg.ClamdAddr, cfg.ClamdTimeout, cfg.ClamdMaxConnections)
	if err != nil {
		return nil, fmt.Errorf("RELAY_CLAMD_ADDR: %w", err)
	}
	larger := "refused with 552 5.3.4 (RELAY_CLAMD_OVERSIZE=refuse)"
	if cfg.ClamdOversize == "accept" {
		larger = "accepted unscanned with an X-Edgerelay-Scan header when their SIZE declared it (scanned up to the limit), else refused with 552 5.3.4 (RELAY_CLAMD_OVERSIZE=accept)"
	}
	failure := "refused with 451 4.7.1 (fail closed)"
	if cfg.ClamdFailOpen {
		failure = "accepted unscanned, WARN per message (RELAY_CLAMD_FAIL_OPEN=true)"
	}
	log.Info("virus scanning with clamd", "clamd", c.String(), "scan_submission", cfg.ScanSubmission,
		"max_bytes", cfg.ClamdMaxBytes, "larger_messages", larger, "clamd_failing", failure,
		"timeout", cfg.ClamdTimeout.String(), "max_connections", cfg.ClamdMaxConnections)
	if cfg.ClamdMaxBytes < cfg.MaxMessageBytes {
		log.Warn("RELAY_CLAMD_MAX_BYTES is below RELAY_MAX_MESSAGE_BYTES: messages between the two are "+larger,
			"clamd_max_bytes", cfg.ClamdMaxBytes, "max_message_bytes", cfg.MaxMessageBytes)
	}
	if !cfg.ScanSubmission {
		log.Warn("RELAY_SCAN_SUBMISSION=false: submissions are not scanned")
	}
	pctx, cancel := context.WithTimeout(ctx, min(cfg.ClamdTimeout, 5*time.Second))
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		log.Warn("clamd not answering at start; until it does, messages are "+failure, "clamd", c.String(), "err", err)
	}
	obs.addScanHistogram()
	return &relay.ScanOptions{
		Scanner:        c,
		SkipSubmission: !cfg.ScanSubmission,
		FailOpen:       cfg.ClamdFailOpen,
		MaxBytes:       cfg.ClamdMaxBytes,
		AcceptOversize: cfg.ClamdOversize == "accept",
		Observe:        obs.observeScan,
	}, nil
}

// newMX is the MX listener's options (nil without RELAY_MX_ADDR). Its
// recipients are checked, with RELAY_MX_VERIFY_RECIPIENTS, against the
// users file and LDAP: the backends that list addresses.
func newMX(cfg *Config, books auth.Addresses, log *slog.Logger) *relay.MXOptions {
	if cfg.MXAddr == "" {
		return nil
	}
	o := &relay.MXOptions{
		LocalDomains:        cfg.localDomains,
		MaxConnectionsPerIP: cfg.MXMaxConnectionsPerIP,
		MessagesPerMinute:   cfg.MXMessagesPerMinute,
	}
	if cfg.MXVerifyRecipients {
		o.Verify = books
	}
	log.Info("MX listener for local domains", "addr", cfg.MXAddr, "local_domains", cfg.LocalDomains,
		"inbound_gateway", cfg.InboundGateway, "verify_recipients", cfg.MXVerifyRecipients,
		"max_connections_per_ip", cfg.MXMaxConnectionsPerIP, "messages_per_minute", cfg.MXMessagesPerMinute)
	return o
}
