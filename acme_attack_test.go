package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAttackACMEStorageInBounceStore: the bounce store must hold nothing
// but reports; the ACME storage (the account key, the certificates' keys)
// may neither lie in it nor contain it: with RELAY_QUEUE=sqs an s3://
// bounce store in RELAY_S3_BUCKET overlapping RELAY_ACME_S3_PREFIX, with
// the spool a maildir: one overlapping $RELAY_DATA_DIR/acme. Refused at
// start, naming both variables; a bounce store beside it is fine.
func TestAttackACMEStorageInBounceStore(t *testing.T) {
	sqs := map[string]string{"RELAY_QUEUE": "sqs", "RELAY_SQS_QUEUE_URL": "http://127.0.0.1:1/q", "RELAY_S3_BUCKET": "b"}
	dataDir := t.TempDir()
	for _, tt := range []struct {
		vars map[string]string
		ok   bool
	}{
		{map[string]string{"RELAY_BOUNCE_STORE": "s3://b/acme/"}, false},
		{map[string]string{"RELAY_BOUNCE_STORE": "s3://b/acme/bounces"}, false},
		{map[string]string{"RELAY_BOUNCE_STORE": "s3://b/reports/", "RELAY_ACME_S3_PREFIX": "reports/acme/"}, false},
		{map[string]string{"RELAY_BOUNCE_STORE": "s3://b/reports/"}, true},
		{map[string]string{"RELAY_BOUNCE_STORE": "s3://other/acme/"}, true},
		{map[string]string{"RELAY_QUEUE": "spool", "RELAY_BOUNCE_STORE": "maildir:" + filepath.Join(dataDir, "acme", "bounces")}, false},
		{map[string]string{"RELAY_QUEUE": "spool", "RELAY_BOUNCE_STORE": "maildir:" + filepath.Join(dataDir, "acme")}, false},
		{map[string]string{"RELAY_QUEUE": "spool", "RELAY_BOUNCE_STORE": "maildir:" + filepath.Join(dataDir, "acme-bounces")}, true},
		{map[string]string{"RELAY_QUEUE": "spool"}, true},
	} {
		t.Run(tt.vars["RELAY_BOUNCE_STORE"]+tt.vars["RELAY_ACME_S3_PREFIX"], func(t *testing.T) {
			t.Setenv("RELAY_ACME", "true")
			t.Setenv("RELAY_HOSTNAME", "smtp.example.org")
			t.Setenv("RELAY_DATA_DIR", dataDir)
			for k, v := range sqs {
				t.Setenv(k, v)
			}
			for k, v := range tt.vars {
				t.Setenv(k, v)
			}
			_, err := loadConfig()
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "RELAY_BOUNCE_STORE") || !strings.Contains(err.Error(), "ACME") {
				t.Fatalf("error %v: want one naming RELAY_BOUNCE_STORE and the ACME storage", err)
			}
		})
	}
}
