package relay

import (
	"errors"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
)

// maxAuthFailures is how many failed AUTH attempts a session may make
// before it is closed with 421 4.7.0.
const maxAuthFailures = 3

// AuthMechanisms lists what the configured backends can do. go-smtp shows
// them only under TLS unless insecure AUTH is allowed (RFC 4954 §4: a
// server should not offer plaintext mechanisms without TLS).
func (ss *session) AuthMechanisms() []string {
	if ss.tls == nil && !ss.srv.opts.InsecureAuth {
		return nil
	}
	var m []string
	if ss.srv.opts.Auth.HasPassword() {
		m = append(m, mechPlain, mechLogin)
	}
	if ss.srv.opts.Auth.HasToken() {
		m = append(m, mechOAuthBearer, mechXOAuth2)
	}
	return m
}

// Auth starts a SASL exchange for mech.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.tls == nil && !ss.srv.opts.InsecureAuth {
		// go-smtp already refuses with 523 5.7.10; this is belt and braces.
		return nil, reply(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	}
	if ss.id != nil {
		return nil, reply(503, 5, 5, 1, "Already authenticated")
	}
	// The server's context: Shutdown cancels it, so a check against a
	// directory that hangs does not hold the shutdown (issue 8 item 15).
	// The backends bound each check with their own deadline.
	ctx := ss.srv.ctx
	user := ""
	password := func(authzid, u, pw string) error {
		user = u
		if authzid != "" && authzid != u {
			return errBadCreds // acting as someone else is not allowed
		}
		id, err := ss.srv.opts.Auth.Password(ctx, ss.remoteIP, u, pw)
		return ss.authOutcome(id, err)
	}
	token := func(u, tok string) error {
		user = u
		id, err := ss.srv.opts.Auth.Token(ctx, ss.remoteIP, u, tok)
		if id != nil {
			user = id.User
		}
		return ss.authOutcome(id, err)
	}
	var inner sasl.Server
	switch mech {
	case mechPlain:
		if ss.srv.opts.Auth.HasPassword() {
			inner = newPlainServer(password)
		}
	case mechLogin:
		if ss.srv.opts.Auth.HasPassword() {
			inner = &loginServer{check: password}
		}
	case mechOAuthBearer, mechXOAuth2:
		if ss.srv.opts.Auth.HasToken() {
			inner = &oauthServer{mech: mech, check: token}
		}
	}
	if inner == nil {
		return nil, errMechUnknown
	}
	return &saslOutcome{inner: inner, ss: ss, mech: mech, user: &user}, nil
}

// authOutcome maps a backend answer to the SMTP reply: an outage or the
// throttle is 454 4.7.0 (try again later), never 535, so a directory outage
// does not look like a wrong password.
func (ss *session) authOutcome(id *auth.Identity, err error) error {
	switch {
	case err == nil && id != nil:
		ss.id = id
		return nil
	case errors.Is(err, auth.ErrThrottled):
		return errAuthThrottle
	case errors.Is(err, auth.ErrUnavailable):
		return errAuthTempFail
	default:
		return errBadCreds
	}
}

// saslOutcome wraps a mechanism to log the outcome once and to count
// failures: the third ends the session (421 4.7.0, then close).
type saslOutcome struct {
	inner sasl.Server
	ss    *session
	mech  string
	user  *string
}

func (o *saslOutcome) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := o.inner.Next(resp)
	if !done {
		return ch, done, err
	}
	ss := o.ss
	if err == nil && ss.id != nil {
		ss.srv.stats.authOK.Add(1)
		ss.log = ss.log.With("user", ss.id.User)
		ss.log.Info("auth ok", "mech", o.mech, "backend", ss.id.Backend)
		return nil, true, nil
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		se = errAuthSyntax // a malformed exchange from the SASL library
	}
	if se.Code == 454 {
		ss.srv.stats.authTemp.Add(1)
	} else {
		ss.srv.stats.authFailed.Add(1)
	}
	ss.authFails++
	ss.log.Warn("auth failed", "mech", o.mech, "user", *o.user, "reply", se.Code, "failures", ss.authFails)
	if ss.authFails >= maxAuthFailures {
		if ss.tc != nil {
			ss.tc.closeAfterWrite.Store(true)
		}
		return nil, true, errAuthTooMany
	}
	return nil, true, se
}
