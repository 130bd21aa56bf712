package awstest

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Front starts an HTTP server on 127.0.0.1 in front of the emulator that
// hands every request to mw(next), next being a reverse proxy to the
// emulator, and returns a Server handle whose clients talk to it. Tests
// use it to make the stand-in stricter than the emulator (StrictSQSText)
// or to hang or fail chosen requests. The server closes at the end of the
// test.
func (s *Server) Front(tb testing.TB, mw func(next http.Handler) http.Handler) *Server {
	tb.Helper()
	target, err := url.Parse(s.URL)
	if err != nil {
		tb.Fatalf("awstest: Front: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// A client that gives up on a held request is expected here.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	front := httptest.NewServer(mw(proxy))
	tb.Cleanup(front.Close)
	return &Server{URL: front.URL, down: make(map[string]bool)}
}

// SQSAction is the SQS action of a request of the SQS JSON protocol
// ("SendMessage", "SendMessageBatch", …), or "" for other requests.
func SQSAction(r *http.Request) string {
	a, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	if !ok {
		return ""
	}
	return a
}

// PeekBody reads the request body and puts it back for the next handler.
func PeekBody(r *http.Request) []byte {
	if r.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// ValidSQSText reports whether s satisfies the SQS rule for message
// bodies, as the SQS API reference (SendMessage, MessageBody) states it:
// "A message can include only XML, JSON, and unformatted text. The
// following Unicode characters are allowed: #x9 | #xA | #xD | #x20 to
// #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF. Any characters not
// included in this list will be rejected." Invalid UTF-8 is not text.
func ValidSQSText(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		switch {
		case r == 0x9, r == 0xA, r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
		i += size
	}
	return true
}

// StrictSQSText enforces the SQS character rule (ValidSQSText) on
// SendMessage and SendMessageBatch as real SQS does and the emulator does
// not: a body with another character is refused with
// InvalidMessageContents (HTTP 400), a batch entry with one fails alone.
func StrictSQSText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch SQSAction(r) {
		case "SendMessage":
			var in struct{ MessageBody string }
			if json.Unmarshal(PeekBody(r), &in) == nil && !ValidSQSText(in.MessageBody) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"com.amazonaws.sqs#InvalidMessageContents","message":"Invalid characters found."}`)
				return
			}
		case "SendMessageBatch":
			var in struct {
				Entries []struct{ Id, MessageBody string }
			}
			if json.Unmarshal(PeekBody(r), &in) == nil {
				for _, e := range in.Entries {
					if !ValidSQSText(e.MessageBody) {
						// One invalid entry fails the whole request here
						// (real SQS may report it per entry): stricter.
						w.Header().Set("Content-Type", "application/x-amz-json-1.0")
						w.WriteHeader(http.StatusBadRequest)
						io.WriteString(w, `{"__type":"com.amazonaws.sqs#InvalidMessageContents","message":"Invalid characters found in entry `+e.Id+`."}`)
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
