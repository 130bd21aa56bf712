package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// sesEnv isolates the AWS SDK's configuration chain: static credentials
// from AWS_* variables, no shared config or credentials files, no
// instance metadata, and AWS_ENDPOINT_URL_SESV2 at endpoint; region is
// AWS_REGION ("" for none).
func sesEnv(t *testing.T, endpoint, region string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL_SESV2", endpoint)
	t.Setenv("AWS_CA_BUNDLE", "")
}

// sesRecorder is a local SES endpoint that records the requests' credential
// scopes and answers every SendEmail with status (and a throttling error
// when it is 429).
type sesRecorder struct {
	mu     sync.Mutex
	scopes []string
	status int
}

func (s *sesRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	auth := r.Header.Get("Authorization")
	_, scope, _ := strings.Cut(auth, "Credential=")
	scope, _, _ = strings.Cut(scope, ",")
	s.mu.Lock()
	s.scopes = append(s.scopes, r.Method+" "+r.URL.Path+" "+scope)
	status := s.status
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status == 429 {
		w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
		w.WriteHeader(429)
		io.WriteString(w, `{"message":"Maximum sending rate exceeded."}`)
		return
	}
	io.WriteString(w, `{"MessageId":"0100-test"}`)
}

func (s *sesRecorder) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.scopes...)
}

func sendOne(t *testing.T, c interface {
	SendEmail(context.Context, *sesv2.SendEmailInput, ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.SendEmail(ctx, &sesv2.SendEmailInput{
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: []byte("Subject: x\r\n\r\nx\r\n")}},
		Destination: &types.Destination{ToAddresses: []string{"bob@example.net"}},
	})
	return err
}

// TestSESClientEndpointAndRegion: the client takes its endpoint from
// AWS_ENDPOINT_URL_SESV2 (resolved by the SDK itself), signs for the
// region of the URL, or AWS_REGION without one, with credentials from the
// AWS_* variables, and makes no request before the first message.
func TestSESClientEndpointAndRegion(t *testing.T) {
	rec := &sesRecorder{status: 200}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	for _, tc := range []struct{ url, env, want string }{
		{"eu-west-1", "us-east-1", "AKIDEXAMPLE/"},
		{"", "ap-southeast-2", "AKIDEXAMPLE/"},
	} {
		sesEnv(t, srv.URL, tc.env)
		c, err := newSESClient(context.Background(), &Config{}, tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(rec.seen()); n != 0 {
			t.Fatalf("%d requests before the first message", n)
		}
		if err := sendOne(t, c); err != nil {
			t.Fatal(err)
		}
		region := tc.url
		if region == "" {
			region = tc.env
		}
		seen := rec.seen()
		want := "/" + region + "/ses/aws4_request"
		if len(seen) != 1 || !strings.HasPrefix(seen[0], "POST /v2/email/outbound-emails AKIDEXAMPLE/") || !strings.HasSuffix(seen[0], want) {
			t.Errorf("ses://%s with AWS_REGION=%s: requests %q, want one SendEmail signed for %s", tc.url, tc.env, seen, want)
		}
		rec.mu.Lock()
		rec.scopes = nil
		rec.mu.Unlock()
	}
}

// TestSESClientRetries: the client retries a throttled call within the
// call (sesMaxAttempts in all) and then returns SES's error type.
func TestSESClientRetries(t *testing.T) {
	rec := &sesRecorder{status: 429}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	sesEnv(t, srv.URL, "us-east-1")
	c, err := newSESClient(context.Background(), &Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = sendOne(t, c)
	var tm *types.TooManyRequestsException
	if !errors.As(err, &tm) {
		t.Fatalf("error %T %v, want TooManyRequestsException", err, err)
	}
	if n := len(rec.seen()); n != sesMaxAttempts {
		t.Errorf("%d requests, want %d", n, sesMaxAttempts)
	}
	if d := time.Since(start); d > time.Duration(sesMaxAttempts)*sesMaxBackoff+5*time.Second {
		t.Errorf("a throttled call took %v", d)
	}
}

// TestSESClientStartupErrors: what cannot work is refused at start, naming
// what to change: no region anywhere, a region that is not one, a
// configuration set SES would refuse.
func TestSESClientStartupErrors(t *testing.T) {
	sesEnv(t, "http://127.0.0.1:9", "")
	for _, tc := range []struct {
		region, cs string
		want       []string
	}{
		{"", "", []string{"ses://eu-west-1", "RELAY_GATEWAY", "RELAY_ROUTES", "AWS_REGION"}},
		{"EU_WEST", "", []string{`"EU_WEST"`, "not an AWS region"}},
		{"eu-west-1.evil.example/", "", []string{"not an AWS region"}},
		{"eu-west-1", "bad name", []string{"RELAY_SES_CONFIGURATION_SET", "letters, digits"}},
		{"eu-west-1", strings.Repeat("c", 65), []string{"RELAY_SES_CONFIGURATION_SET", "at most 64"}},
	} {
		_, err := newSESClient(context.Background(), &Config{SESConfigurationSet: tc.cs}, tc.region)
		if err == nil {
			t.Errorf("region %q, configuration set %q: no error", tc.region, tc.cs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("region %q, configuration set %q: %q does not name %q", tc.region, tc.cs, err, w)
			}
		}
	}
	t.Setenv("AWS_REGION", "Not A Region")
	if _, err := newSESClient(context.Background(), &Config{}, ""); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("a bad AWS_REGION: %v", err)
	}
	if _, err := newSESClient(context.Background(), &Config{SESConfigurationSet: "relay_cs-1"}, "us-gov-west-1"); err != nil {
		t.Errorf("valid region and configuration set refused: %v", err)
	}
}
