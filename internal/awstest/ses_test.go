package awstest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// TestSESv2SendRaw checks what the SES gateway relies on: SendEmail with
// raw content through the real SDK client is stored with its bytes and
// its Destination as given (not the header's), and SentEmails reads it
// back; SetDown("sesv2") fails the calls.
func TestSESv2SendRaw(t *testing.T) {
	s := Start(t)
	marker := UniqueName("ses-raw")
	raw := []byte("From: a@example.org\r\nTo: b@example.net\r\nSubject: " + marker + "\r\n\r\nbody \xff\x00 bytes\r\n")
	out, err := s.SESV2().SendEmail(ctx(t), &sesv2.SendEmailInput{
		FromEmailAddress:     aws.String("a@example.org"),
		Destination:          &types.Destination{ToAddresses: []string{"b@example.net", "hidden@example.com"}},
		Content:              &types.EmailContent{Raw: &types.RawMessage{Data: raw}},
		ConfigurationSetName: aws.String("cs-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := s.FindSent(t, marker)
	if len(got) != 1 {
		t.Fatalf("found %d stored messages, want 1", len(got))
	}
	e := got[0]
	if e.MessageID != aws.ToString(out.MessageId) || !bytes.Equal(e.RawData, raw) ||
		!slices.Equal(e.Recipients(), []string{"b@example.net", "hidden@example.com"}) ||
		e.FromEmailAddress != "a@example.org" || e.ConfigurationSetName != "cs-1" {
		t.Errorf("stored %v (config set %q), raw equal: %v", e, e.ConfigurationSetName, bytes.Equal(e.RawData, raw))
	}

	s.SetDown("sesv2", true)
	_, err = s.SESV2().SendEmail(ctx(t), &sesv2.SendEmailInput{
		Destination: &types.Destination{ToAddresses: []string{"b@example.net"}},
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: raw}},
	})
	if !errors.Is(err, ErrDown) {
		t.Errorf("SendEmail while down: %v, want ErrDown", err)
	}
}
