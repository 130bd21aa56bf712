package dsn

import (
	"time"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// seedReport is a small report with SMTPUTF8 and returned content as given.
func seedReport(global bool, ret ReturnContent) *Report {
	d := &Report{
		From: "MAILER-DAEMON@relay.example.org", To: "john@example.org",
		Subject: "Undelivered Mail Returned to Sender", Date: testNow,
		MessageID: "r1@relay.example.org", InReplyTo: "orig@example.org",
		Text:         "Your message could not be delivered.\n",
		ReportingMTA: "relay.example.org", ArrivalDate: testNow.Add(-time.Hour), SMTPUTF8: global,
		Recipients: []Recipient{{OriginalRecipient: "rfc822;bob@example.net", FinalRecipient: "bob@example.net",
			Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net", DiagnosticCode: "550 5.1.1 user unknown", LastAttemptDate: testNow}},
		Return: ret,
	}
	switch ret {
	case ReturnHeaders:
		d.Original = []byte("Subject: s\r\nMessage-ID: <orig@example.org>\r\n")
	case ReturnFull:
		d.Original = []byte("Subject: s\r\nMessage-ID: <orig@example.org>\r\n\r\nbody\r\n")
	}
	return d
}
