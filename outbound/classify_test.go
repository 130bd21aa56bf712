package outbound

import (
	"context"
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
		{"local permanent", permLocal(556, "5.1.10", "null MX"), false, false, "556 5.1.10 null MX"},
		{"local temporary", tempLocal(451, "4.4.3", "DNS down"), true, false, "451 4.4.3 DNS down"},
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
