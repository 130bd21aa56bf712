package outbound

import (
	"golang.org/x/net/idna"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/edgerelay/edgerelay/queue"
)

// mxAddressLimit caps the addresses tried per domain and attempt, as
// Postfix's smtp_mx_address_limit does: a domain with many dead MX hosts
// does not hold a worker for long.
const mxAddressLimit = 5

// domainOf returns the lower-cased domain of addr, the part after the last
// @: splitAddr's split, the one wirePath writes to the next hop.
func domainOf(addr string) string {
	_, d, _ := splitAddr(addr)
	return strings.ToLower(d)
}

// groupByDomain splits recipient indexes by domain, in order of first
// appearance, so that each domain gets one transaction.
func groupByDomain(env *queue.Envelope, idx []int) (domains []string, groups map[string][]int) {
	groups = make(map[string][]int)
	for _, i := range idx {
		d := domainOf(env.Recipients[i].Addr)
		if _, ok := groups[d]; !ok {
			domains = append(domains, d)
		}
		groups[d] = append(groups[d], i)
	}
	return domains, groups
}

// mxHost is one host to try for a domain, with its addresses when known
// already (address literals).
type mxHost struct {
	name string
	ips  []string
}

// isNotFound reports whether err says that the name does not exist.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// mxHosts returns the hosts to try for domain, best first: MX records by
// preference with equal preferences shuffled (RFC 5321 §5.1), or the
// domain itself when it has no MX (the implicit MX). When there are none
// it returns the verdict instead: no such domain (5.1.2), null MX (5.1.10,
// RFC 7505), or a temporary DNS failure (4.4.3).
func (w *Worker) mxHosts(ctx context.Context, domain string) ([]mxHost, *verdict) {
	fail := func(v verdict) ([]mxHost, *verdict) { return nil, &v }
	// RFC 5321 §4.1.3: an address literal names the host itself.
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		lit := strings.TrimPrefix(strings.Trim(domain, "[]"), "ipv6:")
		if ip := net.ParseIP(lit); ip != nil {
			return []mxHost{{name: domain, ips: []string{ip.String()}}}, nil
		}
		return fail(permanent(replyBadDomain("bad address literal " + domain)))
	}
	name := domain
	if !isASCIIName(name) {
		// An internationalized domain (SMTPUTF8 mail) is looked up by its
		// A-label (RFC 5891 §5: IDNA2008 lookup rules).
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return fail(permanent(replyBadDomain(domain + " is not a valid internationalized domain name")))
		}
		name = a
	}
	mxs, err := w.o.Resolver.LookupMX(ctx, name)
	if err != nil && len(mxs) == 0 {
		if !isNotFound(err) {
			return fail(temporary(replyDNSFailed(fmt.Sprintf("DNS lookup of MX for %s failed: %s", domain, errString(err)))))
		}
		mxs = nil // no MX records (or no such name: the A/AAAA lookup tells)
	}
	// RFC 7505 §3: a single MX of "." says the domain accepts no mail.
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return fail(permanent(replyNullMX(domain)))
	}
	if len(mxs) == 0 {
		// RFC 5321 §5.1: no MX means the domain is its own mail host.
		ips, err := w.lookupIPs(ctx, name)
		if err != nil {
			if isNotFound(err) {
				return fail(permanent(replyBadDomain(fmt.Sprintf("domain %s not found: no MX, A or AAAA records", domain))))
			}
			return fail(temporary(replyDNSFailed(fmt.Sprintf("DNS lookup of %s failed: %s", domain, errString(err)))))
		}
		return []mxHost{{name: strings.TrimSuffix(name, "."), ips: ips}}, nil
	}
	mxs = slices.DeleteFunc(slices.Clone(mxs), func(mx *net.MX) bool { return mx.Host == "." || mx.Host == "" })
	// Shuffle, then sort stably by preference: equal preferences end up in
	// random order, spreading load as RFC 5321 §5.1 asks.
	for i := len(mxs) - 1; i > 0; i-- {
		j := int(w.o.Rand() * float64(i+1))
		mxs[i], mxs[j] = mxs[j], mxs[i]
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	hosts := make([]mxHost, 0, len(mxs))
	for _, mx := range mxs {
		hosts = append(hosts, mxHost{name: strings.ToLower(strings.TrimSuffix(mx.Host, "."))})
	}
	return hosts, nil
}

// lookupIPs returns host's addresses as strings.
func (w *Worker) lookupIPs(ctx context.Context, host string) ([]string, error) {
	addrs, err := w.o.Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	ips := make([]string, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP.String()
	}
	return ips, nil
}

// deliverMX delivers m to the pending recipients idx by MX routing: one
// transaction per recipient domain, under the per-domain limit.
func (w *Worker) deliverMX(ctx context.Context, m *queue.Message, idx []int) map[int]result {
	res := make(map[int]result, len(idx))
	domains, groups := groupByDomain(m.Envelope, idx)
	for _, d := range domains {
		if !w.deliverDomainLimited(ctx, m, d, groups[d], res) {
			return res // shutting down; the caller abandons the attempt
		}
	}
	return res
}

// deliverDomainLimited runs deliverDomain under the domain's slot, which it
// gives back however deliverDomain ends: a panic (recovered further up)
// must not keep the slot, or PerDomainConcurrency panics wedge every later
// delivery to the domain. It reports false when no slot was had (ctx done).
func (w *Worker) deliverDomainLimited(ctx context.Context, m *queue.Message, d string, idx []int, res map[int]result) bool {
	release, err := w.domains.acquire(ctx, d)
	if err != nil {
		return false
	}
	defer release()
	got := w.deliverDomain(ctx, m, d, idx)
	stamp(got, w.o.Now())
	for i, r := range got {
		res[i] = r
	}
	return true
}

// deliverDomain tries the domain's hosts in order until one takes the
// transaction. A host that cannot be reached, fails TLS, or fails before
// any recipient was tried (greeting, EHLO, MAIL) passes the turn to the
// next; the last such failure is kept, as temporary, when all fail.
func (w *Worker) deliverDomain(ctx context.Context, m *queue.Message, domain string, idx []int) map[int]result {
	fail := func(v verdict, remote string) map[int]result {
		res := make(map[int]result, len(idx))
		for _, i := range idx {
			res[i] = resultOf(v, remote)
		}
		return res
	}
	hosts, v := w.mxHosts(ctx, domain)
	if v != nil {
		return fail(*v, "")
	}
	port := fmt.Sprint(w.o.MXPort)
	last := temporary(replyNoUsableAddress(domain))
	lastRemote := ""
	tried := 0
	var refused []string // "host [ip] (why)", addresses not dialed
	dnsFailed := false
	for _, h := range hosts {
		ips := h.ips
		if ips == nil {
			var err error
			ips, err = w.lookupIPs(ctx, h.name)
			if err != nil {
				last = temporary(replyDNSFailed(fmt.Sprintf("DNS lookup of mail host %s failed: %s", h.name, errString(err))))
				lastRemote = h.name
				dnsFailed = true
				continue
			}
		}
		for _, ip := range ips {
			if tried >= mxAddressLimit || ctx.Err() != nil {
				break
			}
			if why, bad := w.refused(ip); bad {
				refused = append(refused, fmt.Sprintf("%s [%s] (%s)", h.name, ip, why))
				w.log.Warn("not connecting to an internal address", "id", m.Envelope.ID, "host", h.name, "ip", ip, "why", why)
				continue
			}
			tried++
			t := target{addr: net.JoinHostPort(ip, port), host: h.name, ip: ip, policy: tlsOpportunistic,
				tls: opportunisticTLS(h.name)}
			sc, f := w.connect(ctx, t)
			if f != nil && f.plaintext {
				w.log.Info("TLS handshake failed, retrying without TLS", "id", m.Envelope.ID, "host", h.name, "ip", ip, "err", f.err)
				t.policy = tlsNone
				sc, f = w.connect(ctx, t)
			}
			if f != nil {
				last, lastRemote = f.v, fmt.Sprintf("%s [%s]", h.name, ip)
				w.log.Debug("mail host failed", "id", m.Envelope.ID, "remote", lastRemote, "reply", recordable(last.Reply).String())
				continue
			}
			tr := w.transactMX(ctx, sc, m, idx)
			if tr.early {
				last = temporary(tr.results[idx[0]].reply)
				lastRemote = sc.remote
				continue
			}
			return tr.results
		}
	}
	if tried == 0 && len(refused) > 0 && !dnsFailed {
		// Every address of every host is internal: no later attempt can
		// do better, so the recipients fail now (RFC 3463 §3.5, X.4.4
		// "unable to route").
		return fail(permanent(replyInternalOnly(strings.Join(refused, ", "))), "")
	}
	last.Temporary = true
	return fail(last, lastRemote)
}

// refused says whether MX routing must not connect to ip (a string from
// the resolver or an address literal), unless MXAllowPrivate is set.
func (w *Worker) refused(ip string) (why string, refused bool) {
	if w.o.MXAllowPrivate {
		return "", false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "not an IP address", true
	}
	return refusedAddress(a)
}

// transactMX runs the transaction on sc and ends the connection: politely
// when it is between transactions, by closing it otherwise, and also when
// the transaction panics (the panic goes on to recoverDelivery).
func (w *Worker) transactMX(ctx context.Context, sc *smtpConn, m *queue.Message, idx []int) txResult {
	done := false
	defer func() {
		if !done {
			sc.close()
		}
	}()
	tr := w.transactBatches(ctx, sc, m, idx)
	done = true
	if tr.reusable {
		sc.quit()
	} else {
		sc.close()
	}
	return tr
}

// opportunisticTLS is the TLS configuration for MX hosts: encryption
// without authentication (RFC 7435). The certificate is not checked, as
// with Postfix's "may" level: an unverified TLS session is still better
// than plaintext, and refusing it would only push the mail to plaintext.
func opportunisticTLS(host string) *tls.Config {
	name := host
	if strings.HasPrefix(name, "[") {
		name = ""
	}
	return &tls.Config{ServerName: name, InsecureSkipVerify: true} //nolint:gosec // opportunistic TLS
}

func isASCIIName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
