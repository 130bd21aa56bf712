package relay

import (
	"io"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// phasedSession wraps the session to tell the connection what go-smtp is
// reading (trackedConn's read phases) and when AUTH has succeeded (which
// lifts the pre-authentication budget). It changes no reply.
type phasedSession struct {
	smtp.Session
	auth smtp.AuthSession
	tc   *trackedConn
}

func (s *Server) newPhasedSession(c *smtp.Conn) (smtp.Session, error) {
	ss, err := s.newSession(c)
	if err != nil {
		return ss, err
	}
	tc := underlying(c.Conn())
	as, ok := ss.(smtp.AuthSession)
	if tc == nil || !ok {
		return ss, nil
	}
	return &phasedSession{Session: ss, auth: as, tc: tc}, nil
}

func (p *phasedSession) AuthMechanisms() []string { return p.auth.AuthMechanisms() }

func (p *phasedSession) Auth(mech string) (sasl.Server, error) {
	srv, err := p.auth.Auth(mech)
	if err != nil || srv == nil {
		return srv, err
	}
	return &authWatch{inner: srv, tc: p.tc}, nil
}

// Data marks the body phase. go-smtp v0.25 hands DATA a reader of its own
// and BDAT an *io.PipeReader fed chunk by chunk from another goroutine.
func (p *phasedSession) Data(r io.Reader) error {
	if _, bdat := r.(*io.PipeReader); bdat {
		gen := p.tc.startBDAT()
		defer p.tc.endBDAT(gen)
		return p.Session.Data(r)
	}
	p.tc.startData()
	return p.Session.Data(r)
}

// authWatch lifts the pre-authentication budget when the exchange ends in
// success (done with no error: the session set its identity).
type authWatch struct {
	inner sasl.Server
	tc    *trackedConn
}

func (a *authWatch) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := a.inner.Next(resp)
	if done && err == nil {
		a.tc.authenticated()
	}
	return ch, done, err
}
