package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// GatewayTLS values: how the connection to the gateway is protected.
const (
	// GatewayTLSStartTLS: STARTTLS is required (RFC 3207); a gateway that
	// does not offer it, or whose certificate does not verify (when
	// GatewayTLSVerify is set), gets no mail and the message is retried.
	GatewayTLSStartTLS = "starttls"
	// GatewayTLSImplicit: TLS from the first byte (RFC 8314, port 465).
	GatewayTLSImplicit = "tls"
	// GatewayTLSNone: plaintext. Not allowed with gateway credentials.
	GatewayTLSNone = "none"
)

// Timeouts bound each step of an SMTP session. Zero fields take the
// defaults, which are RFC 5321 §4.5.3.2's minimums.
type Timeouts struct {
	// Connect bounds TCP connect and the TLS handshake (default 30s).
	Connect time.Duration
	// Command bounds the wait for the greeting and each command's reply
	// (default 5m, RFC 5321 §4.5.3.2.1-4).
	Command time.Duration
	// DataBlock bounds each write of the message body (default 3m,
	// RFC 5321 §4.5.3.2.5).
	DataBlock time.Duration
	// Final bounds the wait for the reply to the final dot (default 10m,
	// RFC 5321 §4.5.3.2.6).
	Final time.Duration
	// GatewaySetup bounds each reply of a gateway before MAIL (greeting,
	// EHLO, STARTTLS; default 30s, at most Command). RFC 5321 §4.5.3.2.1 asks 5 minutes
	// for the greeting of any server; a configured gateway is not any
	// server, and one that stops answering its greeting would otherwise
	// hold every delivery that starts for 5 minutes before its list fails
	// over. MX hosts and the inbound gateway keep Command.
	GatewaySetup time.Duration
}

// Resolver looks up the DNS records that MX routing needs. *net.Resolver
// satisfies it. A name that does not exist must be reported as a
// *net.DNSError with IsNotFound set; any other error is temporary.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// reporter produces delivery status notifications; *Reporter implements
// it. Report must be idempotent per (message ID, kind, recipients).
type reporter interface {
	Report(ctx context.Context, req ReportRequest) error
}

// Options configure a Worker. Zero values take the documented defaults.
type Options struct {
	// Queue is where messages are leased from. Required.
	Queue queue.Queue
	// Hostname is the name sent in EHLO (default os.Hostname()).
	Hostname string

	// Gateways is the main gateway list (RELAY_GATEWAY), tried in order
	// with failover (gatewaylist.go); empty, with Gateway empty too, routes
	// by MX. Routes gives sender domains (lower-case A-labels,
	// CanonicalDomain) their own lists (routes.go). Gateway is the
	// one-gateway form ("host:port" with the GatewayTLS… fields below),
	// which New turns into a one-entry Gateways; the two are exclusive.
	Gateways []GatewayConfig
	Routes   map[string][]GatewayConfig
	// GatewayBackoff is how long a gateway that was down is skipped for
	// the next one of its list, doubling with each consecutive failure up
	// to 15m (default 1m; gatewaylist.go).
	GatewayBackoff time.Duration
	// ObserveGateway, when set, hears each gateway attempt, failover and
	// token renewal (for per-gateway metrics), never under a lock.
	ObserveGateway func(GatewayEvent)
	// Gateway is the smarthost, "host:port"; empty routes by MX.
	Gateway string
	// InboundGateway, "host:port", is the internal mail server that gets
	// every recipient at one of LocalDomains (lower-case A-labels), and
	// nothing else gets them: not Gateway, not MX (inbound.go). Empty: no
	// inbound route.
	InboundGateway string
	LocalDomains   map[string]bool
	// GatewayTLS is GatewayTLSStartTLS (default), GatewayTLSImplicit or
	// GatewayTLSNone.
	GatewayTLS string
	// GatewayUsername and GatewayPassword, when set, authenticate to the
	// gateway with AUTH PLAIN (RFC 4954) over TLS. The password is never
	// logged.
	GatewayUsername string
	GatewayPassword string
	// GatewayTLSVerify checks the gateway's certificate against
	// GatewayRootCAs (nil: the system roots) and the gateway's host name.
	GatewayTLSVerify bool
	GatewayRootCAs   *x509.CertPool
	// GatewayIdleTimeout is how long an idle gateway connection is kept for
	// reuse (default 30s).
	GatewayIdleTimeout time.Duration

	// Concurrency is the number of deliveries in flight (default 8); it is
	// also the most idle gateway connections kept.
	Concurrency int
	// PerDomainConcurrency limits deliveries in flight to one recipient
	// domain in MX mode (default 4).
	PerDomainConcurrency int
	// MXPort is the port MX hosts are dialed on (default 25).
	MXPort int
	// MXAllowPrivate lets MX routing connect to loopback, private,
	// link-local and other internal addresses (see refusedAddress), for
	// networks whose mail hosts are meant to be internal. By default such
	// an address is never dialed: a recipient domain (or an address
	// literal) that leads only there fails with 5.4.4. The gateway is not
	// affected: it is configured, not looked up.
	MXAllowPrivate bool
	// Resolver is used for MX routing (default net.DefaultResolver).
	Resolver Resolver
	// Dial opens connections (default a net.Dialer). In MX mode it is
	// called with "ip:port" addresses from Resolver; for the gateway with
	// Gateway as configured.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeouts bound the SMTP conversation.
	Timeouts Timeouts

	// RetrySchedule is the delays between attempts; the last one repeats
	// (default DefaultRetrySchedule). Jitter spreads each delay by ±Jitter
	// of its value (default DefaultJitter; negative disables).
	RetrySchedule []time.Duration
	Jitter        float64
	// QueueLifetime is how long a message is retried before its pending
	// recipients fail with 4.4.7 (default DefaultQueueLifetime).
	QueueLifetime time.Duration
	// DelayWarning is the age at which a "delayed" DSN is sent once for
	// recipients still pending; 0 (or negative) disables it. Configuration
	// passes DefaultDelayWarning unless told otherwise.
	DelayWarning time.Duration
	// ReportRetry is how soon a message is tried again when a report could
	// not be produced (default 1m).
	ReportRetry time.Duration
	// ShutdownGrace bounds how long Run waits, after its context is
	// cancelled, for deliveries in flight (default 30s). Deliveries still
	// running then are abandoned: their lease ends with the process and
	// they are delivered after the next start.
	ShutdownGrace time.Duration

	// Reporter produces reports about recipients that failed, were delayed
	// or were relayed to a hop without DSN; nil only logs them.
	Reporter reporter
	// Observe, when set, is called once per recipient per delivery
	// attempt with its outcome (for metrics), never for a recipient that
	// was done before the attempt and never while a lock is held.
	Observe func(Attempt)
	// Logger receives one line per recipient and attempt (nil discards).
	Logger *slog.Logger
	// Now is the clock (default time.Now). Rand returns numbers in [0, 1)
	// for jitter and MX shuffling (default math/rand/v2).
	Now  func() time.Time
	Rand func() float64
}

// New checks o, fills in defaults and returns a Worker.
func New(o Options) (*Worker, error) {
	if o.Queue == nil {
		return nil, errors.New("outbound: Options.Queue is required")
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("outbound: no Hostname and os.Hostname failed: %w", err)
		}
		o.Hostname = h
	}
	switch o.GatewayTLS {
	case "":
		o.GatewayTLS = GatewayTLSStartTLS
	case GatewayTLSStartTLS, GatewayTLSImplicit, GatewayTLSNone:
	default:
		return nil, fmt.Errorf("outbound: GatewayTLS %q is not one of starttls, tls, none", o.GatewayTLS)
	}
	w := &Worker{}
	if o.GatewayBackoff <= 0 {
		o.GatewayBackoff = time.Minute
	}
	if o.GatewayIdleTimeout <= 0 {
		o.GatewayIdleTimeout = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.PerDomainConcurrency <= 0 {
		o.PerDomainConcurrency = 4
	}
	if o.MXPort <= 0 {
		o.MXPort = 25
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Timeouts.Connect <= 0 {
		o.Timeouts.Connect = 30 * time.Second
	}
	if o.Timeouts.Command <= 0 {
		o.Timeouts.Command = 5 * time.Minute
	}
	if o.Timeouts.DataBlock <= 0 {
		o.Timeouts.DataBlock = 3 * time.Minute
	}
	if o.Timeouts.Final <= 0 {
		o.Timeouts.Final = 10 * time.Minute
	}
	if o.Timeouts.GatewaySetup <= 0 {
		o.Timeouts.GatewaySetup = 30 * time.Second
	}
	o.Timeouts.GatewaySetup = min(o.Timeouts.GatewaySetup, o.Timeouts.Command)
	if len(o.RetrySchedule) == 0 {
		o.RetrySchedule = DefaultRetrySchedule()
	}
	for _, d := range o.RetrySchedule {
		if d <= 0 {
			return nil, fmt.Errorf("outbound: RetrySchedule has a non-positive delay %v", d)
		}
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = DefaultJitter
	case o.Jitter < 0:
		o.Jitter = 0
	}
	if o.QueueLifetime <= 0 {
		o.QueueLifetime = DefaultQueueLifetime
	}
	if o.DelayWarning < 0 {
		o.DelayWarning = 0
	}
	if o.ReportRetry <= 0 {
		o.ReportRetry = time.Minute
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	w.o, w.q, w.log = o, o.Queue, o.Logger
	w.dial = o.Dial
	if w.dial == nil {
		w.dial = (&net.Dialer{}).DialContext
	}
	w.domains = newLimiter(o.PerDomainConcurrency)
	if err := w.setupGateways(&w.o); err != nil {
		return nil, err
	}
	return w, nil
}
