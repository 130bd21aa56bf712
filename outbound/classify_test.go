package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		temp   bool
		broken bool
		reply  string
	}{
		{"550 user unknown", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"},
			false, false, "550 5.1.1 user unknown"},
		{"451 greylisted", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"},
			true, false, "451 4.7.1 greylisted"},
		{"452 no enhanced code", &smtp.SMTPError{Code: 452, Message: "mailbox full"}, true, false, "452 mailbox full"},
		{"421 closes", &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "bye"}, true, true, "421 4.4.2 bye"},
		{"multi-line kept", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected\nsee https://example.net/why"},
			false, false, "554 5.7.1 rejected see https://example.net/why"},
		{"wrapped reply", fmt.Errorf("rcpt: %w", &smtp.SMTPError{Code: 550, Message: "no"}), false, false, "550 no"},
		{"unexpected 3xx", &smtp.SMTPError{Code: 354, Message: "go ahead"}, true, true, "354 go ahead"},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			true, true, "451 4.4.1 connection refused by host"},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, true, true,
			"451 4.4.1 no answer from host: connection timed out"},
		{"dial context deadline", &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}, true, true,
			"451 4.4.1 no answer from host: connection timed out"},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true, true,
			"451 4.4.2 timed out waiting for host"},
		{"EOF", io.EOF, true, true, "451 4.4.2 connection dropped by host"},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true, true,
			"451 4.4.2 connection dropped by host"},
		{"untrusted certificate", x509.UnknownAuthorityError{}, true, true,
			"451 4.7.5 TLS certificate of host not trusted: x509: certificate signed by unknown authority"},
		{"other", errors.New("something odd"), true, true, "451 4.4.2 connection to host failed: something odd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify(tt.err)
			if v.Temporary != tt.temp || v.Broken != tt.broken || v.Reply.String() != tt.reply {
				t.Fatalf("classify = temp %v broken %v %q, want temp %v broken %v %q",
					v.Temporary, v.Broken, v.Reply, tt.temp, tt.broken, tt.reply)
			}
		})
	}
}

func TestReplyFromText(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		want string
		enh  string
	}{
		{250, "2.0.0 OK: queued as 12345", "250 2.0.0 OK: queued as 12345", "2.0.0"},
		{250, "OK", "250 OK", ""},
		{250, "2.0.0 first\n2.0.0 second", "250 2.0.0 first second", "2.0.0"},
		{250, "5.0.0 class mismatch is text", "250 5.0.0 class mismatch is text", ""},
		{250, "2.0.0", "250 2.0.0", "2.0.0"},
		{250, "", "250", ""},
	}
	for _, tt := range tests {
		r := replyFromText(tt.code, tt.msg)
		if r.String() != tt.want || r.Enhanced != tt.enh {
			t.Errorf("replyFromText(%d, %q) = %q (enhanced %q), want %q (%q)", tt.code, tt.msg, r, r.Enhanced, tt.want, tt.enh)
		}
	}
}

func TestHasExtension(t *testing.T) {
	ehlo := "gw.test Hello relay.test\nPIPELINING\nSTARTTLS\nAUTH PLAIN LOGIN\nSIZE 1000"
	for ext, want := range map[string]bool{"STARTTLS": true, "starttls": true, "AUTH": true, "DSN": false, "gw.test": false} {
		if got := hasExtension(ehlo, ext); got != want {
			t.Errorf("hasExtension(%q) = %v, want %v", ext, got, want)
		}
	}
}

// TestClassifyByType: classify maps I/O errors by their type, wrapped or
// not, and never by their text: an error whose text merely looks like TLS
// is not a TLS failure, and a TLS error whose text says nothing of TLS is
// one.
func TestClassifyByType(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("step three: %w", err) }
	// disguise hides an error's text completely: only its type is left.
	disguise := func(err error) error { return disguised{err} }
	tests := []struct {
		name  string
		err   error
		reply string
	}{
		{"certificate verification, unrelated text",
			disguise(&tls.CertificateVerificationError{Err: errors.New("nothing to see here")}),
			"451 4.7.5 TLS certificate of host not trusted: step three failed"},
		{"certificate verification, wrapped",
			wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"451 4.7.5 TLS certificate of host not trusted: step three: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"hostname mismatch", wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mx.example.net"}),
			"451 4.7.5 TLS certificate of host not trusted: step three: x509: certificate is not valid for any names, but wanted to match mx.example.net"},
		{"certificate invalid", wrap(x509.CertificateInvalidError{Cert: &x509.Certificate{}, Reason: x509.Expired, Detail: "then"}),
			"451 4.7.5 TLS certificate of host not trusted: step three: x509: certificate has expired or is not yet valid: then"},
		{"record header, unrelated text", disguise(tls.RecordHeaderError{Msg: "odd bytes"}),
			"451 4.7.5 TLS handshake with host failed: step three failed"},
		{"alert error", disguise(tls.AlertError(40)), "451 4.7.5 TLS handshake with host failed: step three failed"},
		{"unknown authority, unrelated text", disguise(x509.UnknownAuthorityError{}),
			"451 4.7.5 TLS certificate of host not trusted: step three failed"},
		{"alert received (crypto/tls's remote error)", wrap(&net.OpError{Op: "remote error", Err: errors.New("bad certificate")}),
			"451 4.7.5 TLS handshake with host failed: step three: remote error: bad certificate"},
		{"alert sent (crypto/tls's local error)", &net.OpError{Op: "local error", Err: errors.New("unexpected message")},
			"451 4.7.5 TLS handshake with host failed: local error: unexpected message"},
		{"text says tls: only", errors.New("tls: handshake failure"),
			"451 4.4.2 connection to host failed: tls: handshake failure"},
		{"wrapped text says tls: only", wrap(errors.New("tls: bad certificate")),
			"451 4.4.2 connection to host failed: step three: tls: bad certificate"},
		{"text says x509: only", errors.New("x509: certificate signed by unknown authority"),
			"451 4.4.2 connection to host failed: x509: certificate signed by unknown authority"},
		{"text says refused only", errors.New("connection refused"),
			"451 4.4.2 connection to host failed: connection refused"},
		{"DNS", wrap(&net.DNSError{Err: "server misbehaving", Name: "mx.example.net"}),
			"451 4.4.3 cannot resolve host: step three: lookup mx.example.net: server misbehaving"},
		{"refused, wrapped", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			"451 4.4.1 connection refused by host"},
		{"context deadline", wrap(context.DeadlineExceeded), "451 4.4.2 timed out waiting for host"},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), "451 4.4.2 connection dropped by host"},
		{"broken pipe", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, "451 4.4.2 connection dropped by host"},
		{"closed", wrap(net.ErrClosed), "451 4.4.2 connection dropped by host"},
		{"out of step", wrap(errOutOfStep),
			"451 4.4.2 connection to host failed: step three: host sent a reply to no command; the session is out of step"},
		{"reply inside an I/O error", &net.OpError{Op: "read", Err: &smtp.SMTPError{Code: 554, Message: "no"}}, "554 no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify(tt.err)
			if got := v.Reply.String(); got != tt.reply {
				t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.reply)
			}
			if tt.reply != "554 no" && (!v.Temporary || !v.Broken) {
				t.Errorf("classify(%v) temporary %v broken %v, want both", tt.err, v.Temporary, v.Broken)
			}
		})
	}
}

// TestClassifyHandshake: an error from a TLS handshake that is not a
// network failure is a failed handshake, by where it came from (crypto/tls
// returns many as plain errors); network failures keep their own verdict.
func TestClassifyHandshake(t *testing.T) {
	tests := []struct {
		err   error
		reply string
	}{
		{errors.New("server selected unsupported protocol version 300"),
			"451 4.7.5 TLS handshake with host failed: server selected unsupported protocol version 300"},
		{x509.UnknownAuthorityError{}, "451 4.7.5 TLS certificate of host not trusted: x509: certificate signed by unknown authority"},
		{io.EOF, "451 4.4.2 connection dropped by host"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "451 4.4.2 timed out waiting for host"},
	}
	for _, tt := range tests {
		v := classifyHandshake(tt.err)
		if got := v.Reply.String(); got != tt.reply || !v.Temporary || !v.Broken {
			t.Errorf("classifyHandshake(%v) = %q temporary %v broken %v, want %q, temporary and broken",
				tt.err, got, v.Temporary, v.Broken, tt.reply)
		}
	}
}

// TestLocalVerdicts: the replies made here are verdicts
// of their own; none of them is an error that classify could see.
func TestLocalVerdicts(t *testing.T) {
	tests := []struct {
		v          verdict
		temp, brok bool
		reply      string
	}{
		{permanent(replyNullMX("example.net")), false, false, "556 5.1.10 domain example.net does not accept mail (null MX)"},
		{temporary(replyDNSFailed("DNS down")), true, false, "451 4.4.3 DNS down"},
		{permanent(replyTooBig(2000, 1000)), false, false, "552 5.3.4 message size 2000 exceeds the limit of host (1000 bytes)"},
		{permanent(replyNeeds8BitMIME()), false, false,
			"554 5.6.3 host does not support 8BITMIME, which this message needs, and conversion to 7 bits is not supported (RFC 6152)"},
		{dropped(replyNoSTARTTLS()), true, true, "451 4.7.4 TLS is required for this host, but it did not offer STARTTLS"},
		{permanent(replyBadRecipient(errPathNoDomain)), false, false, "553 5.1.3 recipient address cannot be written in SMTP: address has no domain"},
	}
	for _, tt := range tests {
		if tt.v.Temporary != tt.temp || tt.v.Broken != tt.brok || tt.v.Reply.String() != tt.reply {
			t.Errorf("verdict temp %v broken %v %q, want temp %v broken %v %q",
				tt.v.Temporary, tt.v.Broken, tt.v.Reply, tt.temp, tt.brok, tt.reply)
		}
	}
}

// disguised is an error whose text says nothing of what it wraps.
type disguised struct{ err error }

func (d disguised) Error() string { return "step three failed" }
func (d disguised) Unwrap() error { return d.err }
