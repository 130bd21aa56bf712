package outbound

import (
	"context"
	"crypto/x509"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/edgerelay/edgerelay/queue"
)

// hop is one gateway of a list (RELAY_GATEWAY, a RELAY_ROUTES value): an
// SMTP smarthost or the Amazon SES API.
type hop interface {
	// name is the gateway as configured ("smtps://relay.example.net:465",
	// "ses://eu-west-1"), for logs and metrics.
	name() string
	// deliver sends m to the pending recipients idx in one attempt and
	// returns a result for each recipient that got one. down reports that
	// the hop could not be used at all: unreachable, a 421 or other 4xx at
	// connect, EHLO, STARTTLS or AUTH, the OAuth2 token endpoint down, SES
	// throttling, a 5xx from SES's endpoint or a network error. The list
	// then skips the hop for its back-off and tries the next one; without
	// a next one every recipient stays pending. A 5xx for a recipient is a
	// verdict, final, and never down.
	deliver(ctx context.Context, m *queue.Message, idx []int) (res map[int]result, down bool)
}

// GatewayConfig is one gateway of Options.Gateways or of a route.
type GatewayConfig struct {
	// URL is the gateway as configured, for logs and metrics.
	URL string

	// SMTP gateways. Addr is "host:port"; TLS is GatewayTLSStartTLS,
	// GatewayTLSImplicit or GatewayTLSNone; TLSVerify checks the
	// certificate against RootCAs (nil: the system roots).
	Addr      string
	TLS       string
	TLSVerify bool
	RootCAs   *x509.CertPool
	Auth      GatewayAuthConfig

	// SES gateways (ses://REGION): SES is the client (its region and
	// endpoint already set), ConfigurationSet optional.
	SES              SESAPI
	SESRegion        string
	ConfigurationSet string
}

// SESAPI is the part of the SES v2 client a ses:// gateway uses.
type SESAPI interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, opts ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// GatewayAuthConfig says how the worker authenticates to an SMTP gateway
// (RFC 4954). Mechanism is "" (chosen from the gateway's EHLO), "PLAIN",
// "LOGIN" or "XOAUTH2". Tokens, for XOAUTH2, gives access tokens; nil
// without one.
type GatewayAuthConfig struct {
	Mechanism string
	Username  string
	Password  string
	Tokens    TokenSource
}

// TokenSource gives OAuth2 access tokens for XOAUTH2, cached until shortly
// before they expire. Renew drops the cached token after the gateway
// refused it (535), so the next Token fetches a new one.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Renew()
}
