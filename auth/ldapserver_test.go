package auth

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
)

// testDirectory is a small in-process LDAP server (gldap) with real Bind and
// Search handlers: binds are checked against the entries' passwords, and
// search filters are compiled with go-ldap and evaluated against the
// entries, so an unescaped filter would really match what it says.
type testDirectory struct {
	t       testing.TB
	svcDN   string
	svcPW   string
	tls     *tls.Config // StartTLS, and the listener itself when ldaps
	ldaps   bool
	entries []*dirEntry

	mu       sync.Mutex
	bound    map[int]string // connection ID -> bound DN
	binds    []string       // DNs of every bind attempt, in order
	filters  []string       // every search filter received
	srv      *gldap.Server
	proxy    *tcpProxy
	addr     string
	searchRC int // when non-zero, every search answers this result code
}

type dirEntry struct {
	dn       string
	password string
	attrs    map[string][]string
}

const testBaseDN = "dc=example,dc=org"

// defaultEntries: alice and bob; two entries share uid=dup.
func defaultEntries() []*dirEntry {
	person := func(uid, pw string, mail ...string) *dirEntry {
		return &dirEntry{
			dn:       "uid=" + uid + ",ou=people," + testBaseDN,
			password: pw,
			attrs: map[string][]string{
				"objectClass": {"top", "person", "inetOrgPerson"},
				"uid":         {uid},
				"cn":          {uid},
				"mail":        mail,
			},
		}
	}
	alice := person("alice", "alicepw", "alice@example.org")
	alice.attrs["mailAlternateAddress"] = []string{"a.example@example.org", "ALICE@example.org"}
	bob := person("bob", "bobpw", "bob@example.org")
	dup1 := person("dup", "duppw", "dup1@example.org")
	dup2 := person("dup", "duppw", "dup2@example.org")
	dup2.dn = "uid=dup,ou=other," + testBaseDN
	svc := &dirEntry{dn: "cn=svc," + testBaseDN, password: "svcpw",
		attrs: map[string][]string{"objectClass": {"applicationProcess"}, "cn": {"svc"}}}
	return []*dirEntry{alice, bob, dup1, dup2, svc}
}

// newTestDirectory starts the server on 127.0.0.1. tlsCfg may be nil (no
// StartTLS); ldaps makes the listener itself TLS.
func newTestDirectory(t testing.TB, tlsCfg *tls.Config, ldaps bool) *testDirectory {
	t.Helper()
	d := &testDirectory{t: t, svcDN: "cn=svc," + testBaseDN, svcPW: "svcpw", tls: tlsCfg, ldaps: ldaps,
		entries: defaultEntries(), bound: map[int]string{}}
	d.start("127.0.0.1:0")
	t.Cleanup(d.stop)
	return d
}

func (d *testDirectory) url() string {
	if d.ldaps {
		return "ldaps://" + d.addr
	}
	return "ldap://" + d.addr
}

// start runs the gldap server on a private port and, in front of it, a TCP
// pass-through on addr (port 0: a free port) that the backend connects to.
// gldap cannot drop its connections on demand (Stop waits for clients to
// hang up); the pass-through can, which is what a crashed or restarted
// directory looks like to the client.
func (d *testDirectory) start(addr string) {
	d.t.Helper()
	srv, err := gldap.NewServer(gldap.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		d.t.Fatal(err)
	}
	mux, _ := gldap.NewMux()
	must := func(err error) {
		if err != nil {
			d.t.Fatal(err)
		}
	}
	must(mux.Bind(d.handleBind))
	must(mux.Search(d.handleSearch))
	must(mux.ExtendedOperation(d.handleStartTLS, gldap.ExtendedOperationStartTLS))
	must(mux.ExtendedOperation(d.handleWhoAmI, gldap.ExtendedOperationWhoAmI))
	must(mux.DefaultRoute(func(w *gldap.ResponseWriter, r *gldap.Request) {
		_ = w.Write(r.NewResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform)))
	}))
	must(srv.Router(mux))
	var opts []gldap.Option
	if d.ldaps {
		opts = append(opts, gldap.WithTLSConfig(d.tls))
	}
	inner := freeAddr(d.t)
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(inner, opts...) }()
	for !srv.Ready() {
		select {
		case err := <-errc:
			d.t.Fatalf("gldap: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		d.t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: inner, conns: map[net.Conn]bool{}}
	go p.serve()
	d.mu.Lock()
	d.srv, d.proxy, d.addr = srv, p, ln.Addr().String()
	d.mu.Unlock()
}

// stop takes the directory down: the listener closes and every open
// connection is cut.
func (d *testDirectory) stop() {
	d.mu.Lock()
	srv, p := d.srv, d.proxy
	d.srv, d.proxy = nil, nil
	d.mu.Unlock()
	if p != nil {
		p.close()
	}
	if srv != nil {
		_ = srv.Stop()
	}
}

// sever makes every open connection half-dead: the server side is gone, the
// client notices only when it next writes (a directory restarted behind a
// firewall that dropped the state, or an idle timeout it did not announce).
func (d *testDirectory) sever() {
	d.mu.Lock()
	p := d.proxy
	d.mu.Unlock()
	p.cutUpstream()
}

// restart stops the directory and starts it again on the same address:
// every connection the client had pooled is now dead.
func (d *testDirectory) restart() {
	d.stop()
	d.start(d.addr)
}

func freeAddr(t testing.TB) string {
	return testutil.FreeAddr(t)
}

// tcpProxy copies bytes between its clients and target.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool // value: upstream side
	closed bool
	lazy   atomic.Bool // cutUpstream: client sides stay open until used
}

// cutUpstream closes the server side of every connection only.
func (p *tcpProxy) cutUpstream() {
	p.lazy.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, up := range p.conns {
		if up {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns[c], p.conns[up] = false, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() {
			_, _ = io.Copy(c, up)
			up.Close()
			// A half-dead connection: the client learns that the server
			// is gone only when it next sends a request.
			if !p.lazy.Load() {
				c.Close()
			}
		}()
	}
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
}

func (d *testDirectory) bindDNs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.binds...)
}

func (d *testDirectory) allFilters() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.filters...)
}

func (d *testDirectory) lastFilter() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.filters) == 0 {
		return ""
	}
	return d.filters[len(d.filters)-1]
}

func (d *testDirectory) handleBind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer func() { _ = w.Write(resp) }()
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		resp.SetResultCode(gldap.ResultUnwillingToPerform)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.binds = append(d.binds, m.UserName)
	delete(d.bound, r.ConnectionID())
	switch {
	case m.UserName == "" && m.Password == "":
		resp.SetResultCode(gldap.ResultSuccess) // anonymous
		return
	case m.Password == "":
		// RFC 4513 §5.1.2 unauthenticated bind: like many servers, say
		// success (and grant nothing). The backend must never send one.
		resp.SetResultCode(gldap.ResultSuccess)
		return
	}
	for _, e := range d.entries {
		if strings.EqualFold(e.dn, m.UserName) && e.password == string(m.Password) {
			d.bound[r.ConnectionID()] = e.dn
			resp.SetResultCode(gldap.ResultSuccess)
			return
		}
	}
}

func (d *testDirectory) handleStartTLS(w *gldap.ResponseWriter, r *gldap.Request) {
	if d.tls == nil || d.ldaps {
		_ = w.Write(r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform)))
		return
	}
	res := r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	res.SetResponseName(gldap.ExtendedOperationStartTLS)
	if err := w.Write(res); err != nil {
		return
	}
	_ = r.StartTLS(d.tls)
}

func (d *testDirectory) handleWhoAmI(w *gldap.ResponseWriter, r *gldap.Request) {
	res := r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	_ = w.Write(res)
}

func (d *testDirectory) handleSearch(w *gldap.ResponseWriter, r *gldap.Request) {
	done := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	defer func() { _ = w.Write(done) }()
	m, err := r.GetSearchMessage()
	if err != nil {
		done.SetResultCode(gldap.ResultProtocolError)
		return
	}
	d.mu.Lock()
	d.filters = append(d.filters, m.Filter)
	boundAs, rc := d.bound[r.ConnectionID()], d.searchRC
	d.mu.Unlock()
	if rc != 0 {
		done.SetResultCode(rc)
		return
	}
	if d.svcDN != "" && !strings.EqualFold(boundAs, d.svcDN) {
		done.SetResultCode(gldap.ResultInsufficientAccessRights)
		return
	}
	if !strings.HasSuffix(strings.ToLower(testBaseDN), strings.ToLower(m.BaseDN)) &&
		!strings.HasSuffix(strings.ToLower(m.BaseDN), strings.ToLower(testBaseDN)) {
		done.SetResultCode(gldap.ResultNoSuchObject)
		return
	}
	f, err := ldap.CompileFilter(m.Filter)
	if err != nil {
		done.SetResultCode(gldap.ResultProtocolError)
		return
	}
	for _, e := range d.entries {
		if !strings.HasSuffix(strings.ToLower(e.dn), ","+strings.ToLower(m.BaseDN)) {
			continue
		}
		ok, err := matchFilter(f, e.attrs)
		if err != nil {
			done.SetResultCode(gldap.ResultUnwillingToPerform)
			return
		}
		if ok {
			if err := w.Write(r.NewSearchResponseEntry(e.dn, gldap.WithAttributes(e.attrs))); err != nil {
				return
			}
		}
	}
}

// matchFilter evaluates a compiled RFC 4515 filter: and, or, not, equality,
// presence and substrings, attribute names and values compared without
// regard to case (as for the caseIgnoreMatch attributes used here).
func matchFilter(p *ber.Packet, attrs map[string][]string) (bool, error) {
	values := func(name string) []string {
		for k, v := range attrs {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr:
		and := p.Tag == ldap.FilterAnd
		for _, c := range p.Children {
			ok, err := matchFilter(c, attrs)
			if err != nil {
				return false, err
			}
			if ok != and {
				return ok, nil
			}
		}
		return and, nil
	case ldap.FilterNot:
		ok, err := matchFilter(p.Children[0], attrs)
		return !ok, err
	case ldap.FilterEqualityMatch:
		want := string(p.Children[1].ByteValue)
		if want == "" {
			want = p.Children[1].Data.String()
		}
		for _, v := range values(p.Children[0].Data.String()) {
			if strings.EqualFold(v, want) {
				return true, nil
			}
		}
		return false, nil
	case ldap.FilterPresent:
		return len(values(p.Data.String())) > 0, nil
	case ldap.FilterSubstrings:
		for _, v := range values(p.Children[0].Data.String()) {
			if matchSubstrings(strings.ToLower(v), p.Children[1].Children) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("filter type %d not supported", p.Tag)
}

func matchSubstrings(v string, parts []*ber.Packet) bool {
	for _, part := range parts {
		s := strings.ToLower(part.Data.String())
		switch part.Tag {
		case ldap.FilterSubstringsInitial:
			if !strings.HasPrefix(v, s) {
				return false
			}
			v = v[len(s):]
		case ldap.FilterSubstringsAny:
			i := strings.Index(v, s)
			if i < 0 {
				return false
			}
			v = v[i+len(s):]
		case ldap.FilterSubstringsFinal:
			if !strings.HasSuffix(v, s) {
				return false
			}
		}
	}
	return true
}
