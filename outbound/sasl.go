package outbound

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
)

// SASL clients for gateway AUTH that go-sasl does not have in the form a
// gateway needs. go-smtp's Client.Auth base64-decodes each 334 challenge
// before Next sees it, and cancels the exchange with "*" (RFC 4954 §4)
// when Next returns an error.

// errUnexpectedChallenge ends an exchange whose server asked for more
// than the mechanism has to say.
var errUnexpectedChallenge = errors.New("unexpected SASL challenge from gateway")

// loginClient is the LOGIN mechanism (draft-murchison-sasl-login): the
// user name answers the first challenge and the password the second,
// whatever their text ("Username:", "User Name", "Password:" vary between
// servers; go-sasl's LOGIN client insists on "Password:" and sends the
// user name as an initial response, which the draft does not define and
// some servers refuse). A third challenge ends the exchange.
type loginClient struct {
	user, password string
	step           int
}

func newLoginClient(user, password string) *loginClient {
	return &loginClient{user: user, password: password}
}

func (l *loginClient) Start() (string, []byte, error) { return AuthLogin, nil, nil }

func (l *loginClient) Next([]byte) ([]byte, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte(l.user), nil
	case 2:
		return []byte(l.password), nil
	}
	return nil, errUnexpectedChallenge
}

// xoauth2Client is the XOAUTH2 mechanism of Google's "OAuth 2.0 Mechanism"
// (IMAP and SMTP) and Microsoft's "Authenticate an IMAP, POP or SMTP
// connection using OAuth": the initial response is
// "user=" user ^A "auth=Bearer " token ^A ^A. A refused token gets either a
// 535 at once (Microsoft) or a 334 whose text is a base64 JSON error
// (Google); the client answers that challenge with an empty line and the
// server then sends the final 535. The challenge is kept (bounded) for
// the log.
type xoauth2Client struct {
	user, token string
	challenge   *xoauth2Error
}

func (x *xoauth2Client) Start() (string, []byte, error) {
	return AuthXOAUTH2, []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if x.challenge != nil {
		return nil, errUnexpectedChallenge
	}
	x.challenge = parseXOAUTH2Error(challenge)
	return []byte{}, nil
}

// xoauth2Error is the JSON of an XOAUTH2 error challenge, e.g.
// {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}
// (RFC 7628 §3.2.2's error fields in Google's form).
type xoauth2Error struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
}

// maxChallenge bounds what is read from an error challenge: it is
// decoded only for the log.
const maxChallenge = 4096

// parseXOAUTH2Error reads an error challenge. It never fails: a challenge
// that is too long, not JSON or not this JSON gives empty fields; each
// field is cut to 100 bytes of printable ASCII.
func parseXOAUTH2Error(b []byte) *xoauth2Error {
	e := &xoauth2Error{}
	if len(b) <= maxChallenge && utf8.Valid(b) {
		_ = json.Unmarshal(b, e)
	}
	e.Status, e.Schemes, e.Scope = printable(e.Status), printable(e.Schemes), printable(e.Scope)
	return e
}

// printable keeps s's printable ASCII, at most 100 bytes of it.
func printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 100; i++ {
		if s[i] >= ' ' && s[i] <= '~' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// maxCommandLine is SMTP's command line limit, CRLF included (RFC 5321
// §4.5.3.1.4).
const maxCommandLine = 512

// shortIR sends sc's initial response inline (AUTH mech response, one
// round trip) only when that command line fits maxCommandLine; a longer
// one is sent as the answer to the server's first (empty) 334 challenge.
// RFC 4954 §4: "If use of the initial response argument would cause the
// AUTH command to exceed this length, the client MUST NOT use the initial
// response parameter". An XOAUTH2 access token is often 1-2 KB (a
// Microsoft JWT, a Google delegated token), and servers refuse the long
// line (Google's relay: 555 5.5.2 "command line too long"; Dovecot: 500).
func shortIR(sc sasl.Client) sasl.Client { return &deferredIR{Client: sc} }

type deferredIR struct {
	sasl.Client
	ir      []byte
	pending bool
}

func (d *deferredIR) Start() (string, []byte, error) {
	mech, ir, err := d.Client.Start()
	if err != nil || ir == nil || len("AUTH ")+len(mech)+1+base64.StdEncoding.EncodedLen(len(ir))+2 <= maxCommandLine {
		return mech, ir, err
	}
	d.ir, d.pending = ir, true
	return mech, nil, nil
}

func (d *deferredIR) Next(challenge []byte) ([]byte, error) {
	if d.pending {
		d.pending = false
		return d.ir, nil
	}
	return d.Client.Next(challenge)
}
