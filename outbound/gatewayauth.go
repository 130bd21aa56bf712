package outbound

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SASL mechanisms for GatewayAuthConfig.Mechanism ("" chooses, see
// chooseMechanism).
const (
	AuthPlain   = "PLAIN"   // RFC 4616
	AuthLogin   = "LOGIN"   // draft-murchison-sasl-login
	AuthXOAUTH2 = "XOAUTH2" // Google's and Microsoft's OAuth 2.0 SASL mechanism
)

// authFor is the AUTH a target does with a: nil when a has neither a user
// nor a token source (no AUTH at all).
func authFor(a GatewayAuthConfig) *GatewayAuthConfig {
	if a.Username == "" && a.Tokens == nil {
		return nil
	}
	return &a
}

// chooseMechanism picks the SASL mechanism for a from those the gateway's
// EHLO offers (RFC 4954 §3: the AUTH keyword lists them). Forced
// (Mechanism set): that one, if offered. Chosen: XOAUTH2 when a token
// source is configured, else PLAIN, else LOGIN. A mechanism the gateway
// does not offer is never tried: the reply names what is missing, and it is
// this relay's configuration, never the recipients', that is wrong.
func chooseMechanism(a *GatewayAuthConfig, offered func(string) bool) (string, error) {
	want := a.Mechanism
	if want == "" && a.Tokens != nil {
		want = AuthXOAUTH2
	}
	if want != "" {
		if !offered(want) {
			return "", errAuthNotOffered(want)
		}
		return want, nil
	}
	for _, m := range []string{AuthPlain, AuthLogin} {
		if offered(m) {
			return m, nil
		}
	}
	return "", errAuthNotOffered(AuthPlain + " or " + AuthLogin)
}

// errNoTokenSource: XOAUTH2 forced without a token source (a defect of
// the Options, which configuration refuses).
var errNoTokenSource = errors.New("XOAUTH2 without an OAuth2 token source")

type errAuthNotOffered string

func (e errAuthNotOffered) Error() string { return "gateway does not offer AUTH " + string(e) }

// authenticate runs AUTH (RFC 4954) to the gateway with a's credentials,
// only over TLS. A refusal is not a verdict on the recipients (it is this
// relay's configuration that is wrong), so it is temporary whatever the
// code; the remote's reply is kept. fetched, when set, hears of each new
// OAuth2 token this AUTH fetched (metrics).
func authenticate(ctx context.Context, c *smtp.Client, a *GatewayAuthConfig, overTLS bool, fetched func()) *setupFailure {
	if !overTLS {
		return localFailure(dropped(replyAuthNeedsTLS()))
	}
	mech, err := chooseMechanism(a, c.SupportsAuth)
	if err != nil {
		var no errAuthNotOffered
		errors.As(err, &no)
		return localFailure(dropped(replyAuthNotOffered(string(no))))
	}
	switch mech {
	case AuthXOAUTH2:
		if a.Tokens == nil {
			return &setupFailure{v: dropped(replyTokenFailed(errNoTokenSource)), err: errNoTokenSource}
		}
		return authXOAUTH2(ctx, c, a, fetched)
	case AuthLogin:
		return authOnce(c, shortIR(newLoginClient(a.Username, a.Password)), a.Password, b64(a.Password))
	default:
		return authOnce(c, shortIR(sasl.NewPlainClient("", a.Username, a.Password)),
			a.Password, b64("\x00"+a.Username+"\x00"+a.Password))
	}
}

func authOnce(c *smtp.Client, sc sasl.Client, secrets ...string) *setupFailure {
	if err := c.Auth(sc); err != nil {
		return authFailure(redacted(err, secrets...))
	}
	return nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// redacted is err with each of secrets in an SMTP error's text replaced:
// a gateway that echoes what it refused (the password, the token, the
// SASL response in base64) would put it in the reply, which is logged,
// recorded with the recipients and shown by /readyz.
func redacted(err error, secrets ...string) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return err
	}
	msg := se.Message
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	if msg == se.Message {
		return err
	}
	c := *se
	c.Message = msg
	return &c
}

func authFailure(err error) *setupFailure {
	return &setupFailure{v: dropped(classify(err).Reply), err: err}
}

// authXOAUTH2 authenticates with an access token from a.Tokens. A refusal
// of a token (535, RFC 4954 §6 "authentication credentials invalid", or an
// error challenge) renews it once and tries again on the same session,
// which RFC 4954 §4 allows after a failed AUTH (go-smtp's Client.Auth
// follows a 535 with "*" and reads the server's reply to it, so the
// session is in step for the second AUTH); a second refusal is the
// result. Refusals renew the token at most once a minute (renewIf). A token endpoint that fails is a 454 4.7.0 naming its host.
func authXOAUTH2(ctx context.Context, c *smtp.Client, a *GatewayAuthConfig, fetched func()) *setupFailure {
	for try := 0; ; try++ {
		tok, isNew, err := tokenOf(ctx, a.Tokens)
		if err != nil {
			return &setupFailure{v: dropped(replyTokenFailed(err)), err: err}
		}
		if isNew && fetched != nil {
			fetched()
		}
		x := &xoauth2Client{user: a.Username, token: tok}
		_, ir, _ := x.Start()
		err = redacted(c.Auth(shortIR(x)), tok, b64(string(ir)))
		if err == nil {
			return nil
		}
		var se *smtp.SMTPError
		refused := errors.As(err, &se) && (se.Code == 535 || x.challenge != nil && se.Code >= 500)
		if !refused || try > 0 {
			return authFailure(err)
		}
		if t, ok := a.Tokens.(*Tokens); ok {
			if !t.renewIf(tok) {
				return authFailure(err)
			}
		} else {
			a.Tokens.Renew()
		}
	}
}

// tokenOf is ts.Token, and whether the call fetched a new token (known
// only of *Tokens).
func tokenOf(ctx context.Context, ts TokenSource) (string, bool, error) {
	if t, ok := ts.(*Tokens); ok {
		return t.token(ctx)
	}
	tok, err := ts.Token(ctx)
	return tok, false, err
}
