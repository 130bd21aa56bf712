package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"time"

	"github.com/emersion/go-smtp"
)

// lmtpConnect dials the LMTP server at a and brings the session to the
// point where MAIL can be sent: greeting, LHLO (RFC 2033 §4.1), and, over
// TCP when useTLS is set and the server offers it, STARTTLS (RFC 3207)
// without certificate checks (an internal host, as for SMTP in
// deliverInbound) and LHLO again. Over a Unix socket TLS is never tried.
// A failed handshake comes back with plaintext set, as connect's does, so
// that the caller can try again without TLS.
func (w *Worker) lmtpConnect(ctx context.Context, a InboundAddr, useTLS bool) (*smtpConn, *setupFailure) {
	to := w.o.Timeouts
	dctx, cancel := context.WithTimeout(ctx, to.Connect)
	defer cancel()
	raw, err := w.dial(dctx, a.Network, a.Addr)
	if err != nil {
		return nil, ioFailure(err)
	}
	sc := &smtpConn{raw: raw, remote: a.host()}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		sc.remote = fmt.Sprintf("%s [%s]", a.host(), ta.IP)
	}
	sc.stop = context.AfterFunc(ctx, func() { raw.Close() })
	ok := false
	defer func() {
		if !ok {
			sc.close()
		}
	}()
	var conn net.Conn = &timedConn{Conn: raw, write: to.DataBlock}
	if f := sc.lmtpHello(conn, w); f != nil {
		return nil, f
	}
	if starttls, _ := sc.c.Extension("STARTTLS"); useTLS && starttls && a.Network == "tcp" {
		tc, f := sc.lmtpStartTLS(ctx, conn, a, w)
		if f != nil {
			return nil, f
		}
		if tc != nil {
			sc.tls = true
			if f := sc.lmtpHello(withGreeting(tc), w); f != nil {
				var se *smtp.SMTPError
				if !errors.As(f.err, &se) {
					// TLS 1.3: a refused handshake can show only at the
					// first exchange over it.
					return nil, handshakeFailed(f.err, true)
				}
				return nil, f
			}
		}
	}
	ok = true
	return sc, nil
}

// lmtpHello puts a new LMTP client (behind a new reply guard) on conn,
// reads the greeting and sends LHLO.
func (sc *smtpConn) lmtpHello(conn net.Conn, w *Worker) *setupFailure {
	sc.guard = newReplyGuard(conn)
	c := smtp.NewClientLMTP(sc.guard)
	c.CommandTimeout = w.o.Timeouts.Command
	c.SubmissionTimeout = w.o.Timeouts.Final
	sc.c = c
	if err := c.Hello(w.o.Hostname); err != nil {
		return ioFailure(err)
	}
	return nil
}

// lmtpStartTLS sends STARTTLS on the session that lmtpHello began (the
// go-smtp client sends it only from its own dialers) and does the
// handshake. The reply guard hands the client one line per read, so
// nothing past the LHLO reply sits in the client's buffer: what the server
// sent beyond it is the guard's, and fails the write or the check below.
// A refusal (but 421) leaves the session in plaintext: nil, nil.
func (sc *smtpConn) lmtpStartTLS(ctx context.Context, conn net.Conn, a InboundAddr, w *Worker) (*tls.Conn, *setupFailure) {
	to := w.o.Timeouts
	_ = conn.SetDeadline(time.Now().Add(to.Command))
	if _, err := sc.guard.Write([]byte("STARTTLS\r\n")); err != nil {
		return nil, ioFailure(err)
	}
	br := bufio.NewReader(sc.guard)
	_, _, err := textproto.NewReader(br).ReadResponse(220)
	var te *textproto.Error
	switch {
	case errors.As(err, &te) && te.Code != 421:
		if sc.guard.pending() || br.Buffered() > 0 {
			return nil, localFailure(dropped(replyOutOfStep()))
		}
		_ = conn.SetDeadline(time.Time{})
		return nil, nil
	case errors.As(err, &te):
		return nil, ioFailure(smtpErrorFromText(te.Code, te.Msg))
	case err != nil:
		return nil, ioFailure(err)
	}
	if sc.guard.pending() || br.Buffered() > 0 {
		return nil, localFailure(dropped(replyDataBeforeTLS()))
	}
	tc := tls.Client(conn, opportunisticTLS(a.host()))
	hctx, cancel := context.WithTimeout(ctx, to.Connect)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(to.Connect))
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, handshakeFailed(err, true)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}
