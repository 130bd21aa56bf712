package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgerelay/edgerelay/internal/acme"
)

// Config is edgerelay's whole configuration, read from RELAY_* environment
// variables once at start and validated once. The README's configuration
// table lists every field (config_test.go keeps the two in step). A field
// tagged secret:"true" is never printed: "edgerelay config" shows it as
// (set) (TestConfigSecretFieldsTagged keeps the tags complete).
type Config struct {
	// Identity and listeners.
	Hostname        string `envconfig:"HOSTNAME" desc:"name in the banner, EHLO, Received, Message-ID; default: the host name"`
	SubmissionAddr  string `envconfig:"SUBMISSION_ADDR" default:":587" desc:"STARTTLS submission listener; empty disables it"`
	SubmissionsAddr string `envconfig:"SUBMISSIONS_ADDR" default:":465" desc:"implicit-TLS submission listener; empty disables it"`
	HTTPAddr        string `envconfig:"HTTP_ADDR" default:":8080" desc:"/healthz, /readyz and /metrics (Prometheus); empty disables it"`
	AdminToken      string `envconfig:"ADMIN_TOKEN" secret:"true" desc:"bearer token for the queue operations under /admin/ on RELAY_HTTP_ADDR; empty = /admin/ refused (the Unix socket in RELAY_DATA_DIR serves 'edgerelay queue' regardless)"`
	AdminTokenFile  string `envconfig:"ADMIN_TOKEN_FILE" desc:"file holding RELAY_ADMIN_TOKEN"`
	Pprof           bool   `envconfig:"PPROF" default:"false" desc:"also serve Go's profiler (net/http/pprof) under /debug/pprof/ on RELAY_HTTP_ADDR, for measuring; off by default: it shows internals to whoever reaches that port"`
	TLSCertFile     string `envconfig:"TLS_CERT_FILE" desc:"PEM certificate (chain); re-read when it changes. Empty: a self-signed certificate is made at start (WARN)"`
	TLSKeyFile      string `envconfig:"TLS_KEY_FILE" desc:"PEM private key for RELAY_TLS_CERT_FILE"`
	InsecureAuth    bool   `envconfig:"INSECURE_AUTH" default:"false" desc:"allow AUTH without TLS (development only; WARN at start)"`
	Role            Role   `envconfig:"ROLE" default:"all" desc:"all, submission (front end only) or worker (delivery only); the spool needs all"`

	// Queue.
	DataDir              string        `envconfig:"DATA_DIR" default:"./data" desc:"where the local spool (and the default bounce store and users file) live"`
	Queue                QueueKind     `envconfig:"QUEUE" default:"spool" desc:"spool (local disk) or sqs (SQS + S3)"`
	SQSQueueURL          string        `envconfig:"SQS_QUEUE_URL" desc:"SQS queue URL (RELAY_QUEUE=sqs)"`
	S3Bucket             string        `envconfig:"S3_BUCKET" desc:"S3 bucket for message bodies (RELAY_QUEUE=sqs)"`
	S3Prefix             string        `envconfig:"S3_PREFIX" default:"queue/" desc:"key prefix for message bodies"`
	S3SSE                string        `envconfig:"S3_SSE" desc:"server-side encryption: empty, AES256 or aws:kms"`
	SQSVisibilityTimeout time.Duration `envconfig:"SQS_VISIBILITY_TIMEOUT" default:"60s" desc:"how long a received message stays hidden from other workers; extended every third of it while a delivery runs, so a killed worker's messages are retried within it"`
	S3KMSKeyID           string        `envconfig:"S3_KMS_KEY_ID" desc:"KMS key for RELAY_S3_SSE=aws:kms; empty = the AWS managed key aws/s3"`
	SpoolLeaseTimeout    time.Duration `envconfig:"SPOOL_LEASE_TIMEOUT" default:"60s" desc:"local spool: written with every claim; after a crash or kill a message whose delivery was under way is retried once it has passed (not at once, so a message that kills the process cannot loop)"`
	MaxDeliveryCrashes   int           `envconfig:"MAX_DELIVERY_CRASHES" default:"3" desc:"deliveries of one message that may end with the process dying (no outcome recorded) before the message is set aside in quarantine, logged at ERROR and counted"`

	// Identity store.
	Auth              string        `envconfig:"AUTH" default:"file" desc:"identity backends, comma-separated, tried in order: file, ldap, oidc"`
	AuthFile          string        `envconfig:"AUTH_FILE" desc:"users file; default $RELAY_DATA_DIR/users"`
	AuthMaxFailures   int           `envconfig:"AUTH_MAX_FAILURES" default:"5" desc:"failed AUTH attempts per client IP or user name within the window before 454 4.7.0"`
	AuthFailureWindow time.Duration `envconfig:"AUTH_FAILURE_WINDOW" default:"10m" desc:"window for RELAY_AUTH_MAX_FAILURES"`
	AuthCacheTTL      time.Duration `envconfig:"AUTH_CACHE_TTL" default:"60s" desc:"how long a successful password check is remembered; 0 disables"`

	LDAPURL              string        `envconfig:"LDAP_URL" desc:"ldap://host:389 or ldaps://host:636"`
	LDAPStartTLS         bool          `envconfig:"LDAP_STARTTLS" default:"false" desc:"StartTLS on an ldap:// URL"`
	LDAPCAFile           string        `envconfig:"LDAP_CA_FILE" desc:"PEM CA bundle for the directory's certificate"`
	LDAPBindDN           string        `envconfig:"LDAP_BIND_DN" desc:"service account for searches; empty = anonymous search"`
	LDAPBindPassword     string        `envconfig:"LDAP_BIND_PASSWORD" secret:"true" desc:"service account password"`
	LDAPBindPasswordFile string        `envconfig:"LDAP_BIND_PASSWORD_FILE" desc:"file holding the service account password (Docker/Kubernetes secrets)"`
	LDAPBaseDN           string        `envconfig:"LDAP_BASE_DN" desc:"search base, e.g. ou=people,dc=example,dc=org"`
	LDAPFilter           string        `envconfig:"LDAP_FILTER" default:"(&(objectClass=inetOrgPerson)(|(uid={user})(mail={user})))" desc:"search filter; {user} is replaced, escaped per RFC 4515"`
	LDAPAddressAttrs     string        `envconfig:"LDAP_ADDRESS_ATTRS" default:"mail,mailAlternateAddress" desc:"attributes whose values are the user's sender addresses"`
	LDAPTimeout          time.Duration `envconfig:"LDAP_TIMEOUT" default:"5s" desc:"timeout for every directory operation"`

	OIDCIssuer           string `envconfig:"OIDC_ISSUER" desc:"issuer URL (discovery and JWKS)"`
	OIDCAudience         string `envconfig:"OIDC_AUDIENCE" desc:"required aud of bearer tokens"`
	OIDCUserClaim        string `envconfig:"OIDC_USER_CLAIM" default:"email" desc:"claim holding the identity, also an allowed sender"`
	OIDCAddressClaim     string `envconfig:"OIDC_ADDRESS_CLAIM" desc:"optional claim holding more sender addresses"`
	OIDCPasswordGrant    bool   `envconfig:"OIDC_PASSWORD_GRANT" default:"false" desc:"check PLAIN/LOGIN passwords with the provider's token endpoint"`
	OIDCClientID         string `envconfig:"OIDC_CLIENT_ID" desc:"client for the password grant"`
	OIDCClientSecret     string `envconfig:"OIDC_CLIENT_SECRET" secret:"true" desc:"client secret for the password grant"`
	OIDCClientSecretFile string `envconfig:"OIDC_CLIENT_SECRET_FILE" desc:"file holding the client secret"`
	OIDCAllowedDomains   string `envconfig:"OIDC_ALLOWED_DOMAINS" desc:"comma-separated domains whose accounts are accepted (hd claim, else the verified email's domain; Google: hd only); required, or RELAY_OIDC_ALLOWED_TENANTS, with a shared issuer (Google, Entra ID common/organizations/consumers; Entra ID needs tenants)"`
	OIDCAllowedTenants   string `envconfig:"OIDC_ALLOWED_TENANTS" desc:"comma-separated Entra ID tenant IDs (tid claim) whose accounts are accepted"`

	// Submission policy and limits.
	CheckHeaderFrom      bool          `envconfig:"CHECK_HEADER_FROM" default:"true" desc:"require the header From to be one of the user's addresses (550 5.7.1)"`
	MaxMessageBytes      int64         `envconfig:"MAX_MESSAGE_BYTES" default:"26214400" desc:"largest message stored and sent on, added Received/Date/Message-ID included (552 5.3.4); EHLO advertises SIZE 2 KiB less, so the next hop with this SIZE takes it"`
	MaxRecipients        int           `envconfig:"MAX_RECIPIENTS" default:"100" desc:"recipients per message (452 4.5.3)"`
	MaxRecipientsPerHour int           `envconfig:"MAX_RECIPIENTS_PER_HOUR" default:"0" desc:"recipients one user may submit per hour, per front end (450 4.7.1 past it); bounds a stolen password's damage; 0 = no limit"`
	IdleTimeout          time.Duration `envconfig:"IDLE_TIMEOUT" default:"5m" desc:"a client silent this long, or this slow to complete a command line (or a line-length stretch of a message), is disconnected with 421/451 4.4.2 (RFC 5321 4.5.3.2)"`
	MaxSession           time.Duration `envconfig:"MAX_SESSION" default:"30m" desc:"longest a connection may last"`
	PreAuthTimeout       time.Duration `envconfig:"PREAUTH_TIMEOUT" default:"1m" desc:"time a connection has for EHLO, STARTTLS and AUTH together before it is closed (421 4.4.2)"`
	MaxConnections       int           `envconfig:"MAX_CONNECTIONS" default:"1000" desc:"concurrent client connections; 0 = no limit"`
	MaxConnectionsPerIP  int           `envconfig:"MAX_CONNECTIONS_PER_IP" default:"50" desc:"concurrent connections from one IP; 0 = no limit"`
	ProxyProtocolFrom    string        `envconfig:"PROXY_PROTOCOL_FROM" desc:"comma-separated CIDRs of load balancers that send a PROXY protocol v1/v2 header (required from them)"`

	// Header originator policy (RFC 5322 §3.6.2), with CHECK_HEADER_FROM.
	FromDisplayNameAddress string `envconfig:"FROM_DISPLAY_NAME_ADDRESS" default:"refuse" desc:"refuse: a display name in From, Sender, Resent-From or Resent-Sender that contains an address not the user's is refused (550 5.7.1); allow: not checked"`

	// Virus scanning: clamd's INSTREAM before the reply to the final dot
	// or BDAT LAST (relay/scan.go).
	ClamdAddr           string        `envconfig:"CLAMD_ADDR" desc:"clamd that scans every message before the reply to its data: tcp://host:port or unix:///path; empty = no virus scanning"`
	ScanSubmission      bool          `envconfig:"SCAN_SUBMISSION" default:"true" desc:"with RELAY_CLAMD_ADDR, scan submissions (587/465) too; false for sites that scan them elsewhere"`
	ClamdTimeout        time.Duration `envconfig:"CLAMD_TIMEOUT" default:"30s" desc:"bound on each step with clamd (a free connection, connecting, each write, the verdict once the message ended); past it clamd counts as failed"`
	ClamdFailOpen       bool          `envconfig:"CLAMD_FAIL_OPEN" default:"false" desc:"clamd down, erroring or slow: false refuses the message with 451 4.7.1; true accepts it unscanned, with a WARN per message and a count"`
	ClamdMaxBytes       int64         `envconfig:"CLAMD_MAX_BYTES" default:"26214400" desc:"clamd's StreamMaxLength as set in its clamd.conf (Debian's: 25M = 26214400; ClamAV's default 100M); a larger message is never sent to clamd, see RELAY_CLAMD_OVERSIZE"`
	ClamdOversize       string        `envconfig:"CLAMD_OVERSIZE" default:"refuse" desc:"a message over RELAY_CLAMD_MAX_BYTES: refuse (552 5.3.4, at MAIL when its SIZE says so) or accept (unscanned, with an X-Edgerelay-Scan header and a count, when its SIZE declared it; if not declared, 552 5.3.4 still)"`
	ClamdMaxConnections int           `envconfig:"CLAMD_MAX_CONNECTIONS" default:"50" desc:"connections to clamd open at once, one per message from the start of its data to the verdict (keep it under clamd's MaxQueue, 100 by default); a message waits up to RELAY_CLAMD_TIMEOUT for one"`
	// Inbound mail for the local domains (relay/mx.go, outbound/inbound.go).
	MXAddr                string `envconfig:"MX_ADDR" desc:"inbound MX listener (:25 in the container): mail from the Internet for RELAY_LOCAL_DOMAINS, no AUTH, opportunistic STARTTLS; empty = off; needs RELAY_INBOUND_GATEWAY"`
	LocalDomains          string `envconfig:"LOCAL_DOMAINS" desc:"comma-separated domains the MX listener accepts mail for, all delivered to RELAY_INBOUND_GATEWAY; any other recipient domain is 550 5.7.1"`
	InboundGateway        string `envconfig:"INBOUND_GATEWAY" desc:"internal mail server that receives all mail for RELAY_LOCAL_DOMAINS, never the outbound gateway or MX: host:port or smtp://host:port (SMTP), lmtp://host:port (LMTP), lmtp+unix:///path or unix:///path (LMTP over a Unix socket, as Dovecot and Cyrus offer); STARTTLS when offered over TCP"`
	MXVerifyRecipients    bool   `envconfig:"MX_VERIFY_RECIPIENTS" default:"false" desc:"MX listener: check each local recipient against the identity store (users file, LDAP address attributes): unknown 550 5.1.1, directory down 451 4.4.3"`
	MXMaxConnectionsPerIP int    `envconfig:"MX_MAX_CONNECTIONS_PER_IP" default:"10" desc:"concurrent MX connections from one IP (421 4.7.0 past it); 0 = no limit"`
	MXMessagesPerMinute   int    `envconfig:"MX_MESSAGES_PER_MINUTE" default:"60" desc:"transactions per minute from one IP on the MX listener (421 4.7.0 past it); 0 = no limit"`

	// A certificate obtained and renewed by ACME (acme_wire.go, internal/acme).
	ACME              bool   `envconfig:"ACME" default:"false" desc:"obtain and renew the submission listeners' certificate by ACME (Let's Encrypt); not with RELAY_TLS_CERT_FILE"`
	ACMEDomains       string `envconfig:"ACME_DOMAINS" desc:"comma-separated names on the certificate; default: RELAY_HOSTNAME"`
	ACMEEmail         string `envconfig:"ACME_EMAIL" desc:"contact address for the ACME account (expiry notices); may be empty"`
	ACMEDirectory     string `envconfig:"ACME_DIRECTORY" default:"https://acme-v02.api.letsencrypt.org/directory" desc:"ACME directory URL; staging for trials: https://acme-staging-v02.api.letsencrypt.org/directory"`
	ACMECAFile        string `envconfig:"ACME_CA_FILE" desc:"PEM CA bundle trusted for the ACME server's HTTPS, added to the system roots (private CAs, tests)"`
	ACMEChallenge     string `envconfig:"ACME_CHALLENGE" default:"tls-alpn-01" desc:"tls-alpn-01 (a listener on RELAY_ACME_TLS_ADDR, public port 443), http-01 (RELAY_ACME_HTTP_ADDR, public port 80) or dns-01 (Route 53, RELAY_ACME_ROUTE53_ZONE_ID; no port, wildcards allowed)"`
	ACMETLSAddr       string `envconfig:"ACME_TLS_ADDR" default:":443" desc:"tls-alpn-01: the listener for the CA's validation (from start, answering ACME challenges only); the platform must route public port 443 to it"`
	ACMEHTTPAddr      string `envconfig:"ACME_HTTP_ADDR" default:":80" desc:"http-01: the listener for the CA's validation (from start, answering /.well-known/acme-challenge/ only); the platform must route public port 80 to it"`
	ACMES3Prefix      string `envconfig:"ACME_S3_PREFIX" default:"acme/" desc:"RELAY_QUEUE=sqs: key prefix in RELAY_S3_BUCKET for the ACME account, certificates and locks, shared by every front end"`
	ACMERoute53ZoneID string `envconfig:"ACME_ROUTE53_ZONE_ID" desc:"dns-01: the Route 53 hosted zone (ID) holding RELAY_ACME_DOMAINS; credentials from the AWS SDK's chain (route53:ChangeResourceRecordSets, route53:ListResourceRecordSets, route53:GetChange)"`

	// Delivery.
	Gateway                      string        `envconfig:"GATEWAY" desc:"outbound gateway: host:port (TLS from RELAY_GATEWAY_TLS), smtp://host:587 (STARTTLS required), smtps://host:465 (implicit TLS), smtp+insecure://host:25 (no TLS: loopback, or with RELAY_GATEWAY_ALLOW_INSECURE), ses:// or ses://REGION (Amazon SES API); a comma-separated list fails over in order; empty = deliver directly to the recipient domain's MX"`
	GatewayTLS                   string        `envconfig:"GATEWAY_TLS" default:"starttls" desc:"for a host:port gateway: starttls (required), tls (implicit) or none"`
	GatewayUsername              string        `envconfig:"GATEWAY_USERNAME" desc:"AUTH user for the gateway (RELAY_GATEWAY's first SMTP gateway; others from RELAY_GATEWAY_CREDENTIALS_FILE)"`
	GatewayPassword              string        `envconfig:"GATEWAY_PASSWORD" secret:"true" desc:"AUTH password for the gateway"`
	GatewayPasswordFile          string        `envconfig:"GATEWAY_PASSWORD_FILE" desc:"file holding the gateway password"`
	GatewayAuth                  string        `envconfig:"GATEWAY_AUTH" default:"auto" desc:"SASL mechanism to SMTP gateways: auto (XOAUTH2 when an OAuth2 token source is configured, else PLAIN or LOGIN as the gateway's EHLO offers), plain, login or xoauth2"`
	GatewayAllowInsecure         bool          `envconfig:"GATEWAY_ALLOW_INSECURE" default:"false" desc:"allow smtp+insecure:// (no TLS) gateways at addresses other than loopback"`
	GatewayBackoff               time.Duration `envconfig:"GATEWAY_BACKOFF" default:"1m" desc:"how long a gateway that is down (unreachable, or 4xx/5xx before MAIL: greeting, EHLO, STARTTLS, AUTH) is skipped for the next one of its list; doubles with each consecutive failure, up to 15m; at least 1s"`
	GatewayCredentialsFile       string        `envconfig:"GATEWAY_CREDENTIALS_FILE" desc:"credentials for SMTP gateways other than RELAY_GATEWAY's first: one 'host user password' per line (host, host:port or [host]:port; # comments), as Postfix's sasl_passwd; must not be writable by group or others"`
	Routes                       string        `envconfig:"ROUTES" desc:"gateways by sender domain: 'example.org=ses://eu-west-1, partner.example=smtps://relay.partner.example:465'; a value may be a list joined by '|' that fails over in order; senders not listed, and reports, use RELAY_GATEWAY (or MX without one)"`
	GatewayOAuthTokenURL         string        `envconfig:"GATEWAY_OAUTH_TOKEN_URL" desc:"XOAUTH2: OAuth2 token endpoint for the client-credentials grant (Microsoft 365: https://login.microsoftonline.com/TENANT/oauth2/v2.0/token)"`
	GatewayOAuthClientID         string        `envconfig:"GATEWAY_OAUTH_CLIENT_ID" desc:"XOAUTH2: client ID of the app registration"`
	GatewayOAuthClientSecret     string        `envconfig:"GATEWAY_OAUTH_CLIENT_SECRET" secret:"true" desc:"XOAUTH2: client secret"`
	GatewayOAuthClientSecretFile string        `envconfig:"GATEWAY_OAUTH_CLIENT_SECRET_FILE" desc:"file holding the XOAUTH2 client secret"`
	GatewayOAuthScope            string        `envconfig:"GATEWAY_OAUTH_SCOPE" desc:"XOAUTH2: comma-separated scopes (Microsoft 365: https://outlook.office365.com/.default)"`
	GatewayGoogleKeyFile         string        `envconfig:"GATEWAY_GOOGLE_KEY_FILE" desc:"XOAUTH2 to Google Workspace: service-account JSON key file with domain-wide delegation (JWT grant, scope https://mail.google.com/)"`
	GatewayGoogleSubject         string        `envconfig:"GATEWAY_GOOGLE_SUBJECT" desc:"XOAUTH2 to Google Workspace: the user the service account acts as (also the SASL user)"`
	SESConfigurationSet          string        `envconfig:"SES_CONFIGURATION_SET" desc:"ses:// gateways: SES configuration set named on every SendEmail"`
	GatewayTLSVerify             bool          `envconfig:"GATEWAY_TLS_VERIFY" default:"true" desc:"verify the gateway's certificate"`
	GatewayCAFile                string        `envconfig:"GATEWAY_CA_FILE" desc:"PEM CA bundle added to the system roots for the gateway"`
	MXAllowPrivate               bool          `envconfig:"MX_ALLOW_PRIVATE" default:"false" desc:"MX mode: also deliver to loopback, private, link-local and CGNAT addresses (internal mail hosts); by default such MX hosts and address literals fail with 5.4.4"`
	DeliveryConcurrency          int           `envconfig:"DELIVERY_CONCURRENCY" default:"8" desc:"deliveries in flight"`
	RetrySchedule                string        `envconfig:"RETRY_SCHEDULE" default:"5m,10m,20m,40m,1h,2h,4h" desc:"delays between attempts; the last repeats; jittered"`
	QueueLifetime                time.Duration `envconfig:"QUEUE_LIFETIME" default:"120h" desc:"after this, pending recipients fail with 4.4.7"`
	DelayWarning                 time.Duration `envconfig:"DELAY_WARNING" default:"4h" desc:"age at which one delayed DSN is sent; 0 disables"`
	BounceStore                  string        `envconfig:"BOUNCE_STORE" desc:"maildir:PATH or s3://bucket/prefix; default maildir:$RELAY_DATA_DIR/bounces"`
	BounceFrom                   string        `envconfig:"BOUNCE_FROM" desc:"From of reports; default MAILER-DAEMON@$RELAY_HOSTNAME"`
	BounceToSender               bool          `envconfig:"BOUNCE_TO_SENDER" default:"true" desc:"also send each report to the original sender"`
	ShutdownGrace                time.Duration `envconfig:"SHUTDOWN_GRACE" default:"8s" desc:"on SIGTERM, how long sessions and deliveries in progress may finish"`

	// Logging.
	LogFormat string `envconfig:"LOG_FORMAT" default:"auto" desc:"auto (tint on a terminal, JSON otherwise), text (tint on a terminal; elsewhere plain text with RFC 3339 times, no colour codes) or json"`
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`

	// Recorded by load: the variables set in the environment, and those
	// whose value could not be converted (keyed RELAY_NAME).
	set      map[string]bool
	unparsed map[string]struct{}

	// Derived at validation.
	backends      []string
	retrySchedule []time.Duration
	proxies       []netip.Prefix
	localDomains  map[string]bool // RELAY_LOCAL_DOMAINS, canonical
	acmeDomains   []string        // RELAY_ACME_DOMAINS, lower case
	oauth         gatewayOAuth    // RELAY_GATEWAY_AUTH and the token source (config_oauth.go)

	// Set by serve: the ACME certificate manager (RELAY_ACME).
	acme *acme.Manager
}

// Role is what this process runs (RELAY_ROLE).
type Role string

const (
	RoleAll        Role = "all"        // submission and delivery
	RoleSubmission Role = "submission" // the front end only
	RoleWorker     Role = "worker"     // delivery only
)

// submits reports whether the role runs the submission front end.
func (r Role) submits() bool { return r == RoleAll || r == RoleSubmission }

// delivers reports whether the role runs the delivery worker.
func (r Role) delivers() bool { return r == RoleAll || r == RoleWorker }

// QueueKind is the queue backend (RELAY_QUEUE).
type QueueKind string

const (
	QueueSpool QueueKind = "spool" // the local spool
	QueueSQS   QueueKind = "sqs"   // SQS + S3
)

// configDefault returns the default of Config's field, from its struct
// tag: the one source of defaults, also for the healthcheck command, which
// reads only RELAY_HTTP_ADDR.
func configDefault(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		panic("config: no field " + field)
	}
	return f.Tag.Get("default")
}

// envPrefix is the prefix of every variable.
const envPrefix = "RELAY"

// loadConfig reads the environment and validates it. Every problem is
// reported, one line per variable, naming it: a value of the wrong type
// (envconfig stops at the first) as well as every value validate refuses.
func loadConfig() (*Config, error) {
	var c Config
	errs := c.load()
	if err := c.validate(); err != nil {
		// A variable whose value could not be converted is validated with
		// its default and reported once, for the conversion.
		for _, line := range strings.Split(err.Error(), "\n") {
			name, _, _ := strings.Cut(line, ":")
			if _, typeErr := c.unparsed[name]; !typeErr {
				errs = append(errs, line)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return &c, nil
}

// load fills c from the environment, one variable at a time, each through
// envconfig.Process of a struct holding that field alone, so defaults and
// conversions are envconfig's, and a value that cannot be converted does
// not hide the next one. Such a variable keeps its default; load returns
// one line for each, and records which variables were set (c.set) and
// which failed (c.unparsed).
//
// Only RELAY_NAME counts. envconfig, given the prefix RELAY and the tag
// envconfig:"NAME", falls back to plain NAME when RELAY_NAME is unset, so
// HOSTNAME (which Docker sets to the container ID), QUEUE, AUTH, GATEWAY
// and the like would configure the relay unasked. The one-field struct is
// therefore tagged with the whole name, RELAY_NAME, and processed without
// a prefix: envconfig's key and its fallback are then the same variable.
func (c *Config) load() []string {
	var errs []string
	c.set, c.unparsed = map[string]bool{}, map[string]struct{}{}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		key := envPrefix + "_" + name
		if _, ok := os.LookupEnv(key); ok {
			c.set[key] = true
		}
		tag := reflect.StructTag(fmt.Sprintf("envconfig:%q default:%q", key, f.Tag.Get("default")))
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: tag}}))
		err := envconfig.Process("", one.Interface())
		if err == nil {
			v.Field(i).Set(one.Elem().Field(0))
			continue
		}
		var pe *envconfig.ParseError
		if !errors.As(err, &pe) {
			errs = append(errs, fmt.Sprintf("%s: %v", key, err))
			continue
		}
		c.unparsed[key] = struct{}{}
		errs = append(errs, fmt.Sprintf("%s: cannot use %q: %s", key, pe.Value, conversionHint(f, pe.Value)))
		// Validate the rest as if it were unset.
		setDefault(v.Field(i), f.Tag.Get("default"))
	}
	return errs
}

// setDefault sets a bool, integer or duration field to its default tag, as
// envconfig would have (the defaults are valid: TestConfigDefaultsValid).
func setDefault(field reflect.Value, def string) {
	switch {
	case def == "":
	case field.Type() == reflect.TypeFor[time.Duration]():
		d, _ := time.ParseDuration(def)
		field.SetInt(int64(d))
	case field.Kind() == reflect.Bool:
		b, _ := strconv.ParseBool(def)
		field.SetBool(b)
	case field.CanInt():
		n, _ := strconv.ParseInt(def, 0, 64)
		field.SetInt(n)
	}
}
