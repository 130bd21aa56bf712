package awstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"
)

// SESV2 returns an SES v2 client for the emulator (no SDK retries, like
// the other clients of this handle).
func (s *Server) SESV2() *sesv2.Client {
	return sesv2.NewFromConfig(s.Config())
}

// SentEmail is one SendEmail call as the emulator stored it.
type SentEmail struct {
	MessageID            string `json:"MessageId"`
	FromEmailAddress     string
	ConfigurationSetName string
	Destination          struct {
		ToAddresses, CcAddresses, BccAddresses []string
	}
	// RawData is Content.Raw.Data as the call carried it (the emulator
	// decodes the request's base64), byte for byte.
	RawData []byte
}

// SentEmails returns every message sent through the emulator's SES v2
// SendEmail so far, in order, read from its inspection endpoint
// (GET /kumo/ses/v2/sent-emails, an emulator extension that real SES does
// not have). The store is the process's: tests pick theirs out by a unique
// Message-ID or Subject (FindSent).
func (s *Server) SentEmails(tb testing.TB) []SentEmail {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx(tb), http.MethodGet, strings.TrimSuffix(s.URL, "/")+"/kumo/ses/v2/sent-emails", nil)
	if err != nil {
		tb.Fatalf("awstest: SentEmails: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("awstest: SentEmails: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("awstest: SentEmails: %d %s %v", resp.StatusCode, body, err)
	}
	var out struct{ SentEmails []SentEmail }
	if err := json.Unmarshal(body, &out); err != nil {
		tb.Fatalf("awstest: SentEmails: %v in %.200q", err, body)
	}
	return out.SentEmails
}

// FindSent returns the stored messages whose raw content contains marker
// (a Message-ID or Subject unique to the test).
func (s *Server) FindSent(tb testing.TB, marker string) []SentEmail {
	tb.Helper()
	var out []SentEmail
	for _, e := range s.SentEmails(tb) {
		if strings.Contains(string(e.RawData), marker) {
			out = append(out, e)
		}
	}
	return out
}

// Recipients returns every destination address of e, To, Cc and Bcc.
func (e SentEmail) Recipients() []string {
	var out []string
	out = append(out, e.Destination.ToAddresses...)
	out = append(out, e.Destination.CcAddresses...)
	return append(out, e.Destination.BccAddresses...)
}

func (e SentEmail) String() string {
	return fmt.Sprintf("SES %s from %q to %v (%d bytes)", e.MessageID, e.FromEmailAddress, e.Recipients(), len(e.RawData))
}
