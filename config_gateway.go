package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/outbound"
)

// Gateway URLs (RELAY_GATEWAY, RELAY_ROUTES), one entry each:
//
//	host:port              TLS as RELAY_GATEWAY_TLS says (the form before URLs)
//	smtp://host[:587]      STARTTLS required (RFC 3207)
//	smtps://host[:465]     TLS from the first byte (RFC 8314 §3.3)
//	smtp+insecure://host[:25]  no TLS: only a loopback IP literal (127.0.0.1,
//	                       [::1]), or any host with RELAY_GATEWAY_ALLOW_INSECURE
//	ses:// or ses://REGION the Amazon SES v2 API (region empty: the SDK's)
//
// No user, password, path, query or fragment: a password in a URL ends up
// in logs and metrics labels, so credentials come from
// RELAY_GATEWAY_USERNAME/PASSWORD (the first SMTP gateway of RELAY_GATEWAY)
// and RELAY_GATEWAY_CREDENTIALS_FILE (every other, by host;
// config_gateway_creds.go). An error never repeats what could be a secret:
// it shows an entry without what precedes an '@' and without anything after
// the host and port (gatewayShown).

// Schemes of gateway URLs; schemeHostPort is the host:port form.
const (
	schemeHostPort     = ""
	schemeSMTP         = "smtp"
	schemeSMTPS        = "smtps"
	schemeSMTPInsecure = "smtp+insecure"
	schemeSES          = "ses"
)

var defaultPorts = map[string]string{schemeSMTP: "587", schemeSMTPS: "465", schemeSMTPInsecure: "25"}

// sesRegion is the shape of an AWS region name: eu-west-1, us-gov-west-1,
// ap-southeast-3, il-central-1.
var sesRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// gatewayURL is one parsed gateway entry.
type gatewayURL struct {
	// URL is the entry written canonically (scheme, lower-case host,
	// port): the gateway's name in logs and metrics. The host:port form
	// keeps its own text.
	URL    string
	Scheme string
	Host   string // SMTP: the host name or IP, without brackets
	Addr   string // SMTP: host:port as dialed
	Region string // ses://REGION
}

func (g gatewayURL) smtp() bool { return g.Scheme != schemeSES }

// loopback reports whether an SMTP gateway's host is loopback: an IP
// literal in 127.0.0.0/8 or ::1. A name, "localhost" included, is not: it
// is resolved (/etc/hosts, then DNS with the search list where the file
// lacks it, RFC 6761 §6.3 notwithstanding), so what gets mail in clear
// would be decided by resolution.
func (g gatewayURL) loopback() bool {
	a, err := netip.ParseAddr(g.Host)
	return err == nil && a.Unmap().IsLoopback()
}

// gatewayShown is entry s as an error may show it: at most 100 bytes,
// without userinfo (before the last '@') and without path, query or
// fragment, which could hold a secret.
func gatewayShown(s string) string {
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		scheme, rest = "", s
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i] + "/…"
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = "…@" + rest[i+1:]
	}
	if hasScheme {
		rest = scheme + "://" + rest
	}
	if len(rest) > 100 {
		rest = rest[:100] + "…"
	}
	return strconv.Quote(rest)
}

// parseGatewayURL reads one entry (see above).
func parseGatewayURL(s string) (gatewayURL, error) {
	bad := func(why string) (gatewayURL, error) {
		return gatewayURL{}, fmt.Errorf("%s: %s", gatewayShown(s), why)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return bad("white space or control characters")
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		scheme, rest = schemeHostPort, s
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case schemeHostPort, schemeSMTP, schemeSMTPS, schemeSMTPInsecure, schemeSES:
	default:
		return bad("unknown scheme: want smtp://, smtps://, smtp+insecure://, ses:// or host:port")
	}
	if strings.Contains(rest, "@") {
		return bad("no user or password in a gateway URL: use RELAY_GATEWAY_USERNAME/RELAY_GATEWAY_PASSWORD or RELAY_GATEWAY_CREDENTIALS_FILE")
	}
	if strings.ContainsAny(rest, "/?#") {
		return bad("no path, query or fragment: want scheme://host:port")
	}
	if scheme == schemeSES {
		if rest != "" && !sesRegion.MatchString(rest) {
			return bad("not an AWS region name such as eu-west-1")
		}
		return gatewayURL{URL: "ses://" + rest, Scheme: schemeSES, Region: rest}, nil
	}
	host, port := rest, defaultPorts[scheme]
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	} else if scheme == schemeHostPort {
		return bad("not host:port")
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	} else if strings.Contains(rest, ":") {
		// RFC 3986 §3.2.2: smtp://::1:25 would be the address ::1:25.
		return bad("an IPv6 address goes in brackets: scheme://[2001:db8::1]:port")
	}
	if !validPort(port) {
		return bad("the port must be a number from 1 to 65535")
	}
	if !validGatewayHost(host) {
		return bad("not a host name or IP address")
	}
	host = strings.ToLower(host)
	addr := net.JoinHostPort(host, port)
	g := gatewayURL{URL: scheme + "://" + addr, Scheme: scheme, Host: host, Addr: addr}
	if scheme == schemeHostPort {
		g.URL, g.Addr = s, net.JoinHostPort(host, port)
	}
	return g, nil
}

// validPort: digits only (strconv.Atoi and the dialer take "+25" too, a
// second spelling of one gateway), no leading zero, 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// validGatewayHost: an IP address, or dot-separated labels of letters,
// digits, '-' and '_', at most 253 bytes.
func validGatewayHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return !strings.Contains(h, "%") // no IPv6 zone: it names this host's interface
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parseGatewayList reads a list of entries joined by sep: no entry empty,
// none twice (the same URL, or two SMTP entries for one host:port).
func parseGatewayList(v, sep string) ([]gatewayURL, error) {
	var out []gatewayURL
	for n, s := range strings.Split(v, sep) {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("entry %d is empty", n+1)
		}
		g, err := parseGatewayURL(s)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.URL == g.URL || g.smtp() && o.smtp() && o.Addr == g.Addr {
				return nil, fmt.Errorf("%s is listed twice", gatewayShown(g.URL))
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// gatewayRoute is one RELAY_ROUTES entry.
type gatewayRoute struct {
	Domain string // lower-case A-label
	List   []gatewayURL
}

// parseRoutes reads RELAY_ROUTES: "domain=list, domain=list", each list
// joined by '|'.
func parseRoutes(v string) ([]gatewayRoute, error) {
	var out []gatewayRoute
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	for n, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		d, list, ok := strings.Cut(e, "=")
		if e == "" {
			return nil, fmt.Errorf("entry %d is empty", n+1)
		}
		if !ok {
			return nil, fmt.Errorf("entry %d: want domain=gateway (gateways of one route joined by '|')", n+1)
		}
		dom, ok := outbound.CanonicalDomain(strings.TrimSpace(d))
		if !ok {
			return nil, fmt.Errorf("entry %d: %s is not a domain name", n+1, gatewayShown(strings.TrimSpace(d)))
		}
		for _, r := range out {
			if r.Domain == dom {
				return nil, fmt.Errorf("domain %s has two routes", dom)
			}
		}
		gws, err := parseGatewayList(list, "|")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dom, err)
		}
		out = append(out, gatewayRoute{Domain: dom, List: gws})
	}
	return out, nil
}

// errInsecure is why an smtp+insecure:// gateway that is not loopback is
// refused without RELAY_GATEWAY_ALLOW_INSECURE.
var errInsecure = errors.New("no TLS to a host that is not loopback: set RELAY_GATEWAY_ALLOW_INSECURE=true only where the network is trusted")
