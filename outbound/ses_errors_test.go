package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"
)

// sesClientAt is a real SES v2 client for a local endpoint, with the
// given number of attempts per call.
func sesClientAt(endpoint string, attempts int, rt http.RoundTripper) *sesv2.Client {
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	return sesv2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test-secret", ""),
		HTTPClient:   &http.Client{Transport: rt},
		BaseEndpoint: aws.String(endpoint),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = 10 * time.Millisecond
			})
		},
	})
}

func sesSendOnce(t testing.TB, c SESAPI) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.SendEmail(ctx, &sesv2.SendEmailInput{
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: []byte("Subject: x\r\n\r\nx\r\n")}},
		Destination: &types.Destination{ToAddresses: []string{"bob@example.net"}},
	})
	return err
}

func isType[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// TestSESErrorMapping proves the mapping against the real deserializer:
// a local endpoint answers SendEmail as SES v2 writes errors (REST-JSON:
// the code in X-Amzn-Errortype with its namespace suffix, or as __type in
// the body; the message in the body), the real SDK client parses it, and
// the error it returns is the type the mapping names, with the verdict
// and reply the table in ses_errors.go gives.
func TestSESErrorMapping(t *testing.T) {
	const ns = ":http://internal.amazon.com/coral/com.amazonaws.sesv2/"
	cases := []struct {
		name      string
		status    int
		header    string // X-Amzn-Errortype
		body      string
		is        func(error) bool
		permanent bool
		reply     string // code and enhanced code
		text      string // in the reply
	}{
		{"MessageRejected", 400, "MessageRejected" + ns, `{"message":"Email address is not verified."}`,
			isType[*types.MessageRejected], true, "554 5.6.0", "MessageRejected: Email address is not verified."},
		{"MessageRejected in body", 400, "", `{"__type":"com.amazonaws.sesv2#MessageRejected","message":"Illegal header"}`,
			isType[*types.MessageRejected], true, "554 5.6.0", "MessageRejected: Illegal header"},
		{"MailFromDomainNotVerified", 400, "MailFromDomainNotVerifiedException" + ns, `{"message":"MAIL FROM domain not verified"}`,
			isType[*types.MailFromDomainNotVerifiedException], true, "550 5.1.8", "MailFromDomainNotVerifiedException"},
		{"AccountSuspended", 400, "AccountSuspendedException" + ns, `{"message":"suspended"}`,
			isType[*types.AccountSuspendedException], true, "554 5.7.1", "AccountSuspendedException: suspended"},
		{"BadRequest", 400, "BadRequestException" + ns, `{"message":"Illegal address"}`,
			isType[*types.BadRequestException], true, "554 5.5.2", "BadRequestException: Illegal address"},
		{"SendingPaused", 400, "SendingPausedException" + ns, `{"message":"paused"}`,
			isType[*types.SendingPausedException], false, "451 4.3.2", "SendingPausedException"},
		{"NotFound (configuration set)", 404, "NotFoundException" + ns, `{"message":"Configuration set relay-cs does not exist."}`,
			isType[*types.NotFoundException], false, "451 4.3.5", "relay-cs does not exist"},
		{"TooManyRequests", 429, "TooManyRequestsException" + ns, `{"message":"Maximum sending rate exceeded."}`,
			isType[*types.TooManyRequestsException], false, "451 4.4.5", "Maximum sending rate exceeded."},
		{"LimitExceeded", 400, "LimitExceededException" + ns, `{"message":"Daily message quota exceeded."}`,
			isType[*types.LimitExceededException], false, "451 4.4.5", "Daily message quota exceeded."},
		{"Throttling (unmodelled)", 400, "ThrottlingException" + ns, `{"message":"Daily message quota exceeded."}`,
			isType[*smithy.GenericAPIError], false, "451 4.4.5", "ThrottlingException: Daily message quota exceeded."},
		{"429 without a code", 429, "", `<html>slow down</html>`,
			func(error) bool { return true }, false, "451 4.4.5", "Amazon SES is throttling"},
		{"AccessDenied", 403, "AccessDeniedException" + ns, `{"Message":"User is not authorized to perform ses:SendRawEmail"}`,
			isType[*smithy.GenericAPIError], false, "451 4.7.0", "ses:SendRawEmail"},
		{"403 without a code", 403, "", ``,
			func(error) bool { return true }, false, "451 4.7.0", "Amazon SES refused"},
		{"InternalServiceError", 500, "InternalServiceErrorException" + ns, `{"message":"oops"}`,
			isType[*types.InternalServiceErrorException], false, "451 4.3.0", "InternalServiceErrorException: oops"},
		{"503 HTML", 503, "", `<html><body>Service Unavailable</body></html>`,
			func(error) bool { return true }, false, "451 4.3.0", "Amazon SES failed"},
		{"unknown code", 400, "SomethingNewException" + ns, `{"message":"new"}`,
			isType[*smithy.GenericAPIError], false, "451 4.3.0", "SomethingNewException: new"},
		{"message with controls and newlines", 400, "MessageRejected" + ns, `{"message":"bad\u0000 \u001b[31mthing\nsecond\r\nline \u00ff"}`,
			isType[*types.MessageRejected], true, "554 5.6.0", "MessageRejected: bad [31mthing second line \u00ff"},
		{"accepted but unreadable", 200, "", `{"MessageId":`,
			func(error) bool { return true }, false, "451 4.3.0", "Amazon SES"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
					t.Errorf("request %s %s, want POST /v2/email/outbound-emails", r.Method, r.URL.Path)
				}
				if tc.header != "" {
					w.Header().Set("X-Amzn-Errortype", tc.header)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			err := sesSendOnce(t, sesClientAt(srv.URL, 1, nil))
			if err == nil {
				t.Fatal("SendEmail succeeded")
			}
			if !tc.is(err) {
				t.Errorf("the SDK returned %T (%v), not the type the mapping names", err, err)
			}
			v := sesVerdict(err)
			got := v.Reply.String()
			if v.Temporary == tc.permanent || !strings.HasPrefix(got, tc.reply+" ") || !strings.Contains(got, tc.text) {
				t.Errorf("verdict temporary=%v %q, want permanent=%v %q containing %q", v.Temporary, got, tc.permanent, tc.reply, tc.text)
			}
			if rec := recordable(v.Reply); rec.String() != got {
				t.Errorf("reply not recordable as made: %q, recorded %q", got, rec)
			}
		})
	}
}

// TestSESNetworkErrors: a refused connection and a connection dropped
// mid-response are temporary with networkReply's codes.
func TestSESNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v := sesVerdict(sesSendOnce(t, sesClientAt("http://"+addr, 1, nil)))
	if !v.Temporary || v.Reply.String() != "451 4.4.1 connection refused by host" {
		t.Errorf("refused: %v %q", v.Temporary, v.Reply)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Mess")
			c.Close()
		}
	}))
	defer srv.Close()
	v = sesVerdict(sesSendOnce(t, sesClientAt(srv.URL, 1, nil)))
	if !v.Temporary || v.Reply.Code != 451 {
		t.Errorf("dropped: %v %q", v.Temporary, v.Reply)
	}
}

// TestSESNoCredentials: credentials that cannot be had (no role, an
// expired session, IMDS unreachable) make every call fail before it is
// sent: temporary, never a bounce, with the SDK's words.
func TestSESNoCredentials(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.Add(1) }))
	defer srv.Close()
	c := sesv2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("no EC2 IMDS role found")
		}),
		Retryer: func() aws.Retryer { return aws.NopRetryer{} },
	})
	v := sesVerdict(sesSendOnce(t, c))
	if !v.Temporary || v.Reply.Code != 451 || !strings.Contains(v.Reply.String(), "no EC2 IMDS role found") || sent.Load() != 0 {
		t.Errorf("verdict %v %q after %d requests", v.Temporary, v.Reply, sent.Load())
	}
}

// TestSESRetriedThrottling: with the SDK's retries on (as the binary
// configures them, ses_wire.go), a throttled call is tried again within the
// call, and what is still throttled after the last attempt maps as a
// throttle: the retryer's own errors keep SES's error in the chain.
func TestSESRetriedThrottling(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
		w.WriteHeader(429)
		io.WriteString(w, `{"message":"Maximum sending rate exceeded."}`)
	}))
	defer srv.Close()
	c := sesClientAt(srv.URL, 3, nil)
	for range 3 {
		v := sesVerdict(sesSendOnce(t, c))
		if !v.Temporary || v.Reply.Enhanced != "4.4.5" {
			t.Errorf("verdict %v %q", v.Temporary, v.Reply)
		}
	}
	if got := n.Load(); got < 3 || got > 9 {
		t.Errorf("%d requests for three calls of three attempts", got)
	}
}

// memResponse is an http.RoundTripper that answers every request with one
// response made of status, the X-Amzn-Errortype value and body, without a
// network.
type memResponse struct {
	status  int
	errType string
	body    []byte
}

func (m memResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if m.errType != "" {
		h.Set("X-Amzn-Errortype", m.errType)
	}
	return &http.Response{StatusCode: m.status, Status: http.StatusText(m.status), Header: h, Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Body: io.NopCloser(strings.NewReader(string(m.body))),
		ContentLength: int64(len(m.body)), Request: r}, nil
}

// FuzzSESErrorResponse drives any response to SendEmail (status, error
// type header, body with invalid UTF-8, NULs, deep or huge JSON) through the
// real SDK client's deserializer and sesVerdict. Invariants:
//   - each case finishes within 2 s;
//   - a verdict is permanent only for the four final error types
//     (MessageRejected, MailFromDomainNotVerified, AccountSuspended,
//     BadRequest): nothing else ever bounces;
//   - the reply's class matches the verdict (5xx permanent, 4xx
//     temporary), and it is recordable as made: valid UTF-8, no control
//     characters, bounded.
func FuzzSESErrorResponse(f *testing.F) {
	const ns = ":http://internal.amazon.com/coral/com.amazonaws.sesv2/"
	f.Add(400, "MessageRejected"+ns, []byte(`{"message":"Email address is not verified."}`))
	f.Add(400, "", []byte(`{"__type":"com.amazonaws.sesv2#BadRequestException","message":"x"}`))
	f.Add(429, "TooManyRequestsException", []byte(`{"message":"Maximum sending rate exceeded."}`))
	f.Add(400, "ThrottlingException", []byte(`{"message":"Daily message quota exceeded"}`))
	f.Add(503, "", []byte("<html>\x00\xff</html>"))
	f.Add(404, "NotFoundException", []byte(`{"message":"`+strings.Repeat("\\u0000\\n", 2000)+`"}`))
	f.Add(400, "AccountSuspendedException\x00\n", []byte(strings.Repeat("[", 10000)))
	f.Add(200, "", []byte(`{"MessageId":"x"}`))
	f.Add(200, "", []byte(`{"MessageId":`))
	f.Add(403, "AccessDeniedException", []byte(`{"Message":"`+strings.Repeat("é", 5000)+`"}`))
	f.Fuzz(func(t *testing.T, status int, errType string, body []byte) {
		if status < 100 || status > 599 || len(body) > 64<<10 || len(errType) > 1<<10 {
			return
		}
		if !sesHeaderValue(errType) {
			return // net/http would not deliver it either
		}
		c := sesClientAt("http://127.0.0.1:9", 1, memResponse{status: status, errType: errType, body: body})
		var err error
		var v verdict
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err = sesSendOnce(t, c); err != nil {
				v = sesVerdict(err)
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("SendEmail and sesVerdict did not return within 2 s for status %d, type %q, %d body bytes", status, errType, len(body))
		}
		if err == nil {
			return
		}
		final := isType[*types.MessageRejected](err) || isType[*types.MailFromDomainNotVerifiedException](err) ||
			isType[*types.AccountSuspendedException](err) || isType[*types.BadRequestException](err)
		if !v.Temporary && !final {
			t.Fatalf("permanent verdict %q for %T: %v", v.Reply, err, err)
		}
		if v.Temporary != (v.Reply.Code/100 == 4) || (!v.Temporary && v.Reply.Code/100 != 5) {
			t.Fatalf("verdict temporary=%v with reply %q", v.Temporary, v.Reply)
		}
		if rec := recordable(v.Reply); rec.String() != v.Reply.String() {
			t.Fatalf("reply not recordable as made:\n%q\n%q", v.Reply, rec)
		}
	})
}

// sesHeaderValue reports whether s can be an HTTP header value as
// net/http reads one: no CR, LF or NUL, no other control but tab.
func sesHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(s) == s
}
