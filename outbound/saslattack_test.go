package outbound

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

// strictAuthServer is an SMTP server on one end of a pipe that holds
// command lines to RFC 5321 §4.5.3.1.4's 512 octets, CRLF included (as
// Dovecot does; Google's relay answers "555 5.5.2 Syntax error, command
// line too long"), but a SASL response line after a 334 to no limit of
// that kind. It accepts AUTH mech with the response want, sent inline or
// after an empty 334, and records the command lines.
func strictAuthServer(t *testing.T, conn net.Conn, mech, want string) *[]string {
	var lines []string
	go func() {
		defer conn.Close()
		r := bufio.NewReaderSize(conn, 64<<10)
		fmt.Fprint(conn, "220 gw.test ESMTP\r\n")
		read := func() (string, bool) {
			l, err := r.ReadString('\n')
			return l, err == nil
		}
		for {
			l, ok := read()
			if !ok {
				return
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if len(l) > 512 {
				fmt.Fprint(conn, "500 5.5.2 line too long\r\n")
				continue
			}
			cmd := strings.TrimRight(l, "\r\n")
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				fmt.Fprintf(conn, "250-gw.test\r\n250 AUTH %s\r\n", mech)
			case cmd == "AUTH "+mech:
				fmt.Fprint(conn, "334 \r\n")
				resp, ok := read()
				if !ok {
					return
				}
				lines = append(lines, strings.TrimRight(resp, "\r\n"))
				strictAuthCheck(conn, r, &lines, mech, resp, want)
			case strings.HasPrefix(cmd, "AUTH "+mech+" "):
				strictAuthCheck(conn, r, &lines, mech, strings.TrimPrefix(cmd, "AUTH "+mech+" "), want)
			case cmd == "QUIT":
				fmt.Fprint(conn, "221 bye\r\n")
				return
			default:
				fmt.Fprint(conn, "502 5.5.1 no\r\n")
			}
		}
	}()
	return &lines
}

// strictAuthCheck answers a SASL response: 235 when it is want; else 535,
// for XOAUTH2 after Google's error challenge (a 334 with base64 JSON,
// answered by an empty line, which is recorded).
func strictAuthCheck(conn net.Conn, r *bufio.Reader, lines *[]string, mech, resp64, want string) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimRight(resp64, "\r\n"))
	if err == nil && string(b) == want {
		fmt.Fprint(conn, "235 2.7.0 ok\r\n")
		return
	}
	if mech == AuthXOAUTH2 {
		js := `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`
		fmt.Fprintf(conn, "334 %s\r\n", base64.StdEncoding.EncodeToString([]byte(js)))
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		*lines = append(*lines, "answer to the error challenge: "+strings.TrimRight(l, "\r\n"))
	}
	fmt.Fprint(conn, "535 5.7.8 authentication credentials invalid\r\n")
}

// TestAttackAuthLongInitialResponse: RFC 4954 §4: "If use of the initial
// response argument would cause the AUTH command to exceed this length
// [SMTP's], the client MUST NOT use the initial response parameter". An
// XOAUTH2 access token from Microsoft (a JWT, ~2 KB) or Google's
// domain-wide delegation (~1 KB) makes AUTH XOAUTH2 <base64> far longer
// than 512 octets; so does a long password with PLAIN. Such a response is
// sent after the server's empty 334; a short one stays inline (one round
// trip).
func TestAttackAuthLongInitialResponse(t *testing.T) {
	longTok := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 2000) + ".sig"
	const user = "relay@example.org"
	for _, tc := range []struct {
		name, mech, want string
		a                GatewayAuthConfig
		inline           bool
	}{
		{"XOAUTH2 short token", AuthXOAUTH2, "user=" + user + "\x01auth=Bearer tok-1\x01\x01",
			GatewayAuthConfig{Username: user, Tokens: staticTokens("tok-1")}, true},
		{"XOAUTH2 2 KB token", AuthXOAUTH2, "user=" + user + "\x01auth=Bearer " + longTok + "\x01\x01",
			GatewayAuthConfig{Username: user, Tokens: staticTokens(longTok)}, false},
		{"PLAIN short", AuthPlain, "\x00" + user + "\x00pw", GatewayAuthConfig{Username: user, Password: "pw"}, true},
		{"PLAIN long password", AuthPlain, "\x00" + user + "\x00" + strings.Repeat("p", 500),
			GatewayAuthConfig{Username: user, Password: strings.Repeat("p", 500)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			lines := strictAuthServer(t, sc, tc.mech, tc.want)
			c := smtp.NewClient(cc)
			defer c.Close()
			if f := authenticate(context.Background(), c, &tc.a, true, nil); f != nil {
				t.Fatalf("AUTH failed: %q (%v)", f.v.Reply, f.err)
			}
			c.Quit()
			var auth string
			for _, l := range *lines {
				if strings.HasPrefix(l, "AUTH") {
					auth = l
				}
			}
			if inline := auth != "AUTH "+tc.mech; inline != tc.inline {
				t.Errorf("AUTH line %.60q…: inline %v, want %v", auth, inline, tc.inline)
			}
		})
	}
}

// staticTokens is a TokenSource with one token.
type staticTokens string

func (s staticTokens) Token(context.Context) (string, error) { return string(s), nil }
func (s staticTokens) Renew()                                {}

// TestAttackAuthLongTokenRefused: a long XOAUTH2 token (sent after the
// 334) that the gateway refuses with Google's error challenge: the client
// answers the challenge with an empty line (go-smtp then cancels with
// "*", RFC 4954 §4), renews the token once and tries again with the new one (also after a 334), and the session stays
// in step (QUIT is answered).
func TestAttackAuthLongTokenRefused(t *testing.T) {
	const user = "relay@example.org"
	stale := strings.Repeat("S", 1500)
	fresh := strings.Repeat("F", 1500)
	n := 0
	ts := NewTokens(func(context.Context) (*oauth2.Token, error) {
		n++
		if n == 1 {
			return &oauth2.Token{AccessToken: stale}, nil
		}
		return &oauth2.Token{AccessToken: fresh}, nil
	}, "https://login.test/token", 0, nil)
	cc, sc := net.Pipe()
	lines := strictAuthServer(t, sc, AuthXOAUTH2, "user="+user+"\x01auth=Bearer "+fresh+"\x01\x01")
	c := smtp.NewClient(cc)
	defer c.Close()
	if f := authenticate(context.Background(), c, &GatewayAuthConfig{Username: user, Tokens: ts}, true, nil); f != nil {
		t.Fatalf("AUTH failed: %q (%v)", f.v.Reply, f.err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT after AUTH: %v (session out of step)", err)
	}
	var got []string
	for _, l := range *lines {
		got = append(got, l[:min(len(l), 40)])
	}
	want := []string{"EHLO localhost", "AUTH XOAUTH2", base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + stale))[:40],
		"answer to the error challenge: ", "*", "AUTH XOAUTH2", base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + fresh))[:40], "QUIT"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines\n%q\nwant\n%q", got, want)
	}
	if n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
}

// fixedIR is a SASL client with one initial response and nothing more.
type fixedIR struct{ ir []byte }

func (f fixedIR) Start() (string, []byte, error) { return AuthXOAUTH2, f.ir, nil }
func (f fixedIR) Next([]byte) ([]byte, error)    { return nil, errUnexpectedChallenge }

// TestAttackShortIRBoundary: the AUTH line "AUTH XOAUTH2 <base64>" CRLF
// goes inline at 512 octets and not at 516 (base64 grows by 4); deferred,
// the first challenge gets the response and the next ones the client's
// own answers.
func TestAttackShortIRBoundary(t *testing.T) {
	for _, tc := range []struct {
		b64    int
		inline bool
	}{{496, true}, {500, false}} {
		ir := []byte(strings.Repeat("x", tc.b64/4*3))
		c := shortIR(fixedIR{ir})
		mech, got, _ := c.Start()
		if line := len("AUTH "+mech+" ") + base64.StdEncoding.EncodedLen(len(ir)) + 2; (got != nil) != tc.inline || tc.inline && line > maxCommandLine {
			t.Errorf("base64 %d: line %d octets, inline %v", tc.b64, line, got != nil)
		}
		if !tc.inline {
			if resp, err := c.Next(nil); err != nil || string(resp) != string(ir) {
				t.Errorf("first challenge: %d bytes, %v", len(resp), err)
			}
			if _, err := c.Next([]byte("more")); err != errUnexpectedChallenge {
				t.Errorf("second challenge: %v", err)
			}
		}
	}
}
