package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
)

// Authenticator is what the session needs from auth: *auth.Authenticator.
type Authenticator interface {
	Password(ctx context.Context, remoteIP, user, password string) (*auth.Identity, error)
	Token(ctx context.Context, remoteIP, authzid, token string) (*auth.Identity, error)
	HasPassword() bool
	HasToken() bool
}

// Options configure the submission server.
type Options struct {
	// Hostname is used in the banner, the EHLO reply and Received fields.
	Hostname string
	// TLSConfig is used for STARTTLS and implicit TLS. Required.
	TLSConfig *tls.Config
	// InsecureAuth allows AUTH without TLS (development only).
	InsecureAuth bool
	// Auth decides who a client is and which senders are theirs. Required.
	Auth Authenticator
	// Queue receives accepted messages. Required.
	Queue queue.Queue
	// MaxMessageBytes bounds the message as stored, fix-ups included (552
	// 5.3.4); SIZE advertises it less room for the fix-ups (size.go).
	MaxMessageBytes int64
	// MaxRecipients per message (452 4.5.3 past it).
	MaxRecipients int
	// CheckHeaderFrom requires every header From address to be one of the
	// user's addresses (550 5.7.1).
	CheckHeaderFrom bool
	// AllowAddressInDisplayName turns off the rule that refuses a display
	// name containing an address that is not the user's (550 5.7.1).
	AllowAddressInDisplayName bool
	// IdleTimeout bounds how long a client may stay silent, and how long
	// one command line or one data line may take to arrive (RFC 5321
	// §4.5.3.2 suggests 5 minutes); MaxSessionDuration bounds a whole
	// connection, so a slow client cannot hold one forever.
	IdleTimeout        time.Duration
	MaxSessionDuration time.Duration
	// PreAuthTimeout is the total time a connection may take to
	// authenticate (EHLO, STARTTLS and AUTH together); 0: no budget.
	PreAuthTimeout time.Duration
	// MaxConnections and MaxConnectionsPerIP limit concurrent connections
	// (0: no limit). Both count every listener of the Server together;
	// "per IP" is per IPv4 address and per IPv6 /64 (see limitKey).
	MaxConnections      int
	MaxConnectionsPerIP int
	// MaxRecipientsPerHour limits the recipients one user may submit per
	// hour (token bucket; 450 4.7.1 past it). 0 means no limit.
	MaxRecipientsPerHour int
	// ProxyProtocolFrom lists the load balancers whose PROXY protocol
	// header (v1 or v2) carries the real client address. Connections from
	// them must start with one; other peers are served directly.
	ProxyProtocolFrom []netip.Prefix
	// Scan, when set, streams every message to a virus scanner before the
	// reply to its data (scan.go).
	Scan *ScanOptions
	// MX, when set, makes ServeMX serve inbound mail for local domains
	// (mx.go).
	MX *MXOptions
	// Logger receives the session events. Never a secret.
	Logger *slog.Logger
	// Observe, when set, is called once per reply to a transaction's data
	// (see Accept), on the session's goroutine: it must not block.
	Observe func(Accept)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Server is the submission server. One Server serves any number of
// listeners; Shutdown drains them all.
type Server struct {
	opts     Options
	log      *slog.Logger
	smtp     *smtp.Server
	ctx      context.Context
	cancel   context.CancelFunc
	draining atomic.Bool
	stats    counters
	scans    scanCounters

	// The MX listener's (mx.go), with Options.MX.
	mx       *mxPolicy
	mxSMTP   *smtp.Server
	mxLimits *connLimits
	rate     *rateLimiter
	limits   *connLimits

	mu        sync.Mutex
	listeners []*listener
	serving   sync.WaitGroup
}

// New checks the options and returns a Server.
func New(o Options) (*Server, error) {
	switch {
	case o.TLSConfig == nil:
		return nil, errors.New("relay: TLSConfig is required")
	case o.Auth == nil:
		return nil, errors.New("relay: Auth is required")
	case o.Queue == nil:
		return nil, errors.New("relay: Queue is required")
	case o.Hostname == "":
		return nil, errors.New("relay: Hostname is required")
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: o, log: o.Logger}
	s.rate = newRateLimiter(o.MaxRecipientsPerHour, s.now)
	s.limits = newConnLimits(o.MaxConnections, o.MaxConnectionsPerIP)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.smtp = s.newSMTP(smtp.BackendFunc(s.newPhasedSession), false)
	if err := s.newMXServer(); err != nil {
		return nil, err
	}
	return s, nil
}

// newSMTP makes a go-smtp server with the Options' settings, for the MX
// listener or submission.
func (s *Server) newSMTP(be smtp.Backend, mx bool) *smtp.Server {
	o := s.opts
	srv := smtp.NewServer(be)
	srv.Domain = o.Hostname
	srv.TLSConfig = o.TLSConfig
	srv.AllowInsecureAuth = o.InsecureAuth
	srv.MaxMessageBytes = advertisedSize(s.sizeLimit(mx)) // room for the fix-ups (size.go)
	srv.MaxRecipients = o.MaxRecipients
	// go-smtp has one line limit for commands, SASL responses and DATA
	// lines. It is what AUTH needs (see maxCommandLine): OAuth tokens from
	// Entra ID and others often exceed the 4,000 octets this used to be.
	// It still bounds memory per line; BDAT chunks have no line limit.
	srv.MaxLineLength = maxCommandLine
	srv.WriteTimeout = time.Minute
	srv.ReadTimeout = o.IdleTimeout
	srv.IdleRead = idleRead // a shallow wait between commands (idle.go)
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ErrorLog = slogPrinter{s.log}
	return srv
}

// maxSASLResponse is the longest base64 SASL response accepted, as the
// initial response on the AUTH line or on its own line after a 334: RFC
// 4954 §4 asks servers to accept 12,288 octets (Postfix's
// smtpd_sasl_response_limit has the same default).
const maxSASLResponse = 12288

// maxCommandLine is the line limit given to go-smtp: an AUTH line with a
// maxSASLResponse initial response ("AUTH OAUTHBEARER " + response + CRLF)
// fits, with room. go-smtp counts the line's LF towards the next line.
const maxCommandLine = maxSASLResponse + 64

// slogPrinter adapts go-smtp's error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.l.Debug(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.l.Debug(fmt.Sprint(v...)) }

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Listen opens addr and serves SMTP submission on it in the background:
// STARTTLS submission (port 587) when implicitTLS is false, submission over
// implicit TLS (port 465, RFC 8314 §3.3) when true. It returns the bound
// address.
func (s *Server) Listen(addr string, implicitTLS bool) (net.Addr, error) {
	nl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.Serve(nl, implicitTLS), nil
}

// Serve serves submission on an open listener in the background.
func (s *Server) Serve(nl net.Listener, implicitTLS bool) net.Addr {
	return s.serve(nl, implicitTLS, false)
}

// serve serves submission, or with mx the MX listener (no pre-AUTH budget:
// there is no AUTH; its own connection limits).
func (s *Server) serve(nl net.Listener, implicitTLS, mx bool) net.Addr {
	srv, limits, preauth := s.smtp, s.limits, s.opts.PreAuthTimeout
	if mx {
		srv, limits, preauth = s.mxSMTP, s.mxLimits, 0
	}
	l := &listener{
		Listener:   nl,
		idle:       s.opts.IdleTimeout,
		maxSession: s.opts.MaxSessionDuration,
		preauth:    preauth,
		limits:     limits,
		proxies:    s.opts.ProxyProtocolFrom,
		conns:      map[*trackedConn]struct{}{},
		log:        s.log.Warn,
		info:       s.log.Info,
		stats:      &s.stats,
	}
	if implicitTLS {
		l.tlsConfig = s.opts.TLSConfig
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener stopped", "addr", nl.Addr().String(), "err", err)
		}
	}()
	s.log.Info("listening", "addr", nl.Addr().String(), "implicit_tls", implicitTLS, "mx", mx)
	return nl.Addr()
}

// Shutdown stops accepting connections, lets transactions in progress
// finish until ctx is done, tells idle clients "421 4.3.2" as soon as they
// are idle, and at the deadline closes what is left with the same reply.
// A message is never half-queued: the queue either made it durable (and
// the client may or may not have seen the 250: at-least-once) or not.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan error, 1)
	go func() {
		err := s.smtp.Shutdown(ctx)
		if s.mxSMTP != nil {
			if mxErr := s.mxSMTP.Shutdown(ctx); err == nil || errors.Is(err, smtp.ErrServerClosed) {
				err = mxErr
			}
		}
		done <- err
	}()

	const bye = "421 4.3.2 Service shutting down, try again later"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			s.cancel()
			s.closeListeners()
			s.serving.Wait()
			if errors.Is(err, smtp.ErrServerClosed) {
				err = nil
			}
			return err
		case <-ctx.Done():
			for _, c := range s.allConns() {
				c.say421(bye)
			}
			s.smtp.Close()
			if s.mxSMTP != nil {
				s.mxSMTP.Close()
			}
			s.cancel()
			<-done
			s.closeListeners()
			s.serving.Wait()
			return nil
		case <-tick.C:
			for _, c := range s.allConns() {
				if c.idleFor(20 * time.Millisecond) {
					c.say421(bye)
				}
			}
		}
	}
}

// closeListeners closes every listener Serve was given. go-smtp's Shutdown
// and Close close only the listeners its Serve registered, which a Serve
// goroutine not scheduled yet has not done: it would then Accept on an open
// listener forever, and Shutdown would wait for it. Closed here, its Accept
// fails at once and go-smtp's Serve returns (it sees the server closed).
func (s *Server) closeListeners() {
	s.mu.Lock()
	ls := append([]*listener(nil), s.listeners...)
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

func (s *Server) allConns() []*trackedConn {
	s.mu.Lock()
	ls := append([]*listener(nil), s.listeners...)
	s.mu.Unlock()
	var out []*trackedConn
	for _, l := range ls {
		out = append(out, l.snapshot()...)
	}
	return out
}
