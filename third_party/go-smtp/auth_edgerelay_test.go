package smtp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

// edgerelay patch 7: Auth answers a challenge it cannot take with "*"
// (RFC 4954 §4) and sends nothing after a final reply, so that a second
// AUTH on the same session (RFC 4954 §4 allows one after a failure) reads
// its own reply.
func TestAuthCancelOnlyAChallenge(t *testing.T) {
	for _, tc := range []struct {
		name, server, wrote string
		a                   sasl.Client
		code                int
	}{
		{"535 at once", "535 5.7.8 no\r\n", "AUTH PLAIN AHUAcA==\r\n", sasl.NewPlainClient("", "u", "p"), 535},
		{"535 after a challenge answered", "334 e30=\r\n535 5.7.8 no\r\n",
			"AUTH X aXI=\r\n\r\n", emptyAnswer{}, 535},
		{"challenge not base64", "334 !!\r\n501 5.0.0 cancelled\r\n", "AUTH PLAIN AHUAcA==\r\n*\r\n", sasl.NewPlainClient("", "u", "p"), 0},
		{"challenge refused by the client", "334 e30=\r\n501 5.0.0 cancelled\r\n", "AUTH PLAIN AHUAcA==\r\n*\r\n",
			sasl.NewPlainClient("", "u", "p"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wrote bytes.Buffer
			c := NewClient(faker{struct {
				io.Reader
				io.Writer
			}{strings.NewReader(tc.server), &wrote}})
			c.didHello = true
			err := c.Auth(tc.a)
			var se *SMTPError
			if tc.code != 0 && (!errors.As(err, &se) || se.Code != tc.code) {
				t.Errorf("Auth: %v, want a %d", err, tc.code)
			}
			if tc.code == 0 && err == nil {
				t.Error("Auth succeeded")
			}
			if wrote.String() != tc.wrote {
				t.Errorf("wrote %q, want %q", wrote.String(), tc.wrote)
			}
		})
	}
}

// emptyAnswer is XOAUTH2's shape: an initial response, and an empty line
// to an error challenge.
type emptyAnswer struct{}

func (emptyAnswer) Start() (string, []byte, error) { return "X", []byte("ir"), nil }
func (emptyAnswer) Next([]byte) ([]byte, error)    { return []byte{}, nil }
