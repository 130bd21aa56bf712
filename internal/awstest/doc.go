// Package awstest runs an in-process SQS + S3 + SES v2 emulator on
// 127.0.0.1 for tests, and builds real AWS SDK clients that talk to it. It
// is test support only: production code never imports it (the command
// awsemu runs the same emulator as a process for the end-to-end tests).
//
// The emulator is github.com/sivchari/kumo (SQS JSON protocol with long
// polling, visibility timeouts, receive counts and redrive; S3 path-style
// with multipart uploads, conditional writes and the SDK's aws-chunked
// checksum encoding; SES v2 SendEmail, whose calls it stores as they came,
// read back with SentEmails, ses.go). The clients are the SDK's own,
// configured with a static region and credentials and an explicit HTTP
// client, so nothing in the environment (AWS_PROFILE, AWS_CA_BUNDLE,
// SSL_CERT_FILE, …) changes what a test does.
//
// Invariants:
//   - Everything stays on loopback: the emulator listens on 127.0.0.1 and
//     the clients' only endpoint is its URL (or a Front in front of it).
//   - One emulator per process, in memory, shared by every Start: its
//     state outlives a test, so each test names its queues and buckets
//     with UniqueName.
//   - Faults are per handle: SetDown and Front change only the clients of
//     the handle they are called on; the clients make one attempt per
//     request (no SDK retries), so a fault a test injects is the one the
//     code under test sees.
package awstest
