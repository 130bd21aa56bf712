package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
)

// longTokenBackend accepts any token "long~<user>~<padding>": it stands in
// for an identity provider whose tokens are large (Entra ID access tokens
// with many group claims run to several KB). The point is the transport.
type longTokenBackend struct{}

func (longTokenBackend) Name() string { return "oidc" }
func (longTokenBackend) CheckToken(_ context.Context, tok string) (*auth.Identity, error) {
	rest, ok := strings.CutPrefix(tok, "long~")
	if !ok {
		return nil, auth.ErrBadCredentials
	}
	u, _, _ := strings.Cut(rest, "~")
	return &auth.Identity{User: u, Addresses: []string{u}, Backend: "oidc"}, nil
}

// xoauth2Client is the XOAUTH2 client side (go-sasl has none).
type xoauth2Client struct{ user, token string }

func (c xoauth2Client) Start() (string, []byte, error) {
	return mechXOAuth2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}
func (c xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }

// tokenOfEncodedLen is a token whose XOAUTH2 response for user is n octets
// once base64-encoded (n a multiple of 4).
func tokenOfEncodedLen(user string, n int) string {
	fixed := len("user=" + user + "\x01auth=Bearer long~" + user + "~\x01\x01")
	return "long~" + user + "~" + strings.Repeat("x", n/4*3-fixed)
}

// TestAuthLongTokenInitialResponse: a real client sends a ~10 KB AUTH line
// (XOAUTH2 and OAUTHBEARER with the initial response, RFC 4954 §4) over
// implicit TLS and is authenticated. With the 4,000-octet line limit the
// connection was dropped mid-line (go-smtp answered "454 4.7.0 Invalid base64
// data" to the truncated line).
func TestAuthLongTokenInitialResponse(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Auth = newAuthWith(longTokenBackend{}) })
	tok := tokenOfEncodedLen(alice, 10240)
	for _, mech := range []sasl.Client{
		xoauth2Client{user: alice, token: tok},
		sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: alice, Token: tok}),
	} {
		name, ir, _ := mech.Start()
		t.Run(name, func(t *testing.T) {
			if n := base64.StdEncoding.EncodedLen(len(ir)); n < 10000 {
				t.Fatalf("initial response is only %d octets encoded", n)
			}
			c, err := smtp.DialTLS(e.addr465, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Auth(mech); err != nil {
				t.Fatalf("AUTH %s with a %d-octet encoded initial response: %v", name, base64.StdEncoding.EncodedLen(len(ir)), err)
			}
			if err := c.Mail(alice, nil); err != nil {
				t.Fatalf("MAIL after AUTH: %v", err)
			}
		})
	}
}

// TestAuthResponseLineLimit: a SASL response sent after the 334 prompt may
// be 12,288 octets (RFC 4954 §4; Postfix's smtpd_sasl_response_limit), and
// a line past the limit still ends the connection with 500 5.4.0.
func TestAuthResponseLineLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Auth = newAuthWith(longTokenBackend{}) })
	resp := []byte("user=" + alice + "\x01auth=Bearer " + tokenOfEncodedLen(alice, maxSASLResponse) + "\x01\x01")
	enc := base64.StdEncoding.EncodeToString(resp)
	if len(enc) != maxSASLResponse {
		t.Fatalf("encoded response is %d octets, want %d", len(enc), maxSASLResponse)
	}
	c := e.dialTLS()
	c.ehlo()
	c.must(334, "", "AUTH XOAUTH2")
	if code, msg := c.cmd("%s", enc); code != 235 {
		t.Fatalf("a %d-octet SASL response: got %d %s, want 235", len(enc), code, msg)
	}

	c2 := e.dialTLS()
	c2.ehlo()
	if code, msg := c2.cmd("NOOP %s", strings.Repeat("x", maxCommandLine)); code != 500 {
		t.Fatalf("a %d-octet line: got %d %.80s, want 500 (too long)", maxCommandLine, code, msg)
	}
}

// FuzzAuthResponseLength: SASL responses of any length and content, as the
// initial response or after the 334, each get a reply within 2 s; one that
// fits the RFC 4954 limit is never refused for its length (no "500 Too long
// line", no "454 Invalid base64" from a cut line); a line longer than the
// limit ends the connection with 500.
func FuzzAuthResponseLength(f *testing.F) {
	e := newEnv(f, func(o *Options) {
		o.Auth = newAuthWith(longTokenBackend{})
		o.InsecureAuth = true // plain 587: the line limit is the same under TLS
	})
	f.Add(uint16(100), true, []byte("x"))
	f.Add(uint16(maxSASLResponse/4*3-60), false, []byte("abc"))
	f.Add(uint16(maxSASLResponse/4*3+50), true, []byte("z"))
	f.Add(uint16(9000), true, []byte{0})
	f.Fuzz(func(t *testing.T, n uint16, ir bool, seed []byte) {
		if len(seed) == 0 || n > 20000 {
			return
		}
		pad := bytes.Repeat(seed, int(n)/len(seed)+1)[:n]
		resp := append([]byte("user="+alice+"\x01auth=Bearer long~"+alice+"~"), pad...)
		resp = append(resp, "\x01\x01"...)
		enc := base64.StdEncoding.EncodeToString(resp)
		nc, err := net.Dial("tcp", e.addr587)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		tp := textproto.NewConn(nc)
		read := func(what string) (int, string) {
			nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			code, msg, err := tp.ReadResponse(0)
			if err != nil && code == 0 {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("%s: no reply within 2 s", what)
				}
				return 0, err.Error() // closed
			}
			return code, msg
		}
		read("greeting")
		tp.PrintfLine("EHLO fuzz.test")
		read("EHLO")
		line := enc
		if ir {
			line = "AUTH XOAUTH2 " + enc
		} else {
			tp.PrintfLine("AUTH XOAUTH2")
			if code, msg := read("AUTH"); code != 334 {
				t.Fatalf("AUTH XOAUTH2: %d %s", code, msg)
			}
		}
		tp.PrintfLine("%s", line)
		code, msg := read("response")
		switch {
		case len(enc) <= maxSASLResponse:
			if code == 500 || code == 454 && strings.Contains(msg, "base64") {
				t.Fatalf("a %d-octet response: %d %s", len(enc), code, msg)
			}
		case len(line)+2 > maxCommandLine:
			if code != 500 && code != 0 {
				t.Fatalf("a %d-octet line past the %d limit: %d %s", len(line), maxCommandLine, code, msg)
			}
		}
	})
}
