package bounce_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/internal/awstest"
)

var s3BounceSeq atomic.Int64

// s3BounceBucket creates a fresh bucket holding the given objects.
func s3BounceBucket(t *testing.T, srv *awstest.Server, objects ...string) string {
	t.Helper()
	bucket := fmt.Sprintf("bounce-%d", s3BounceSeq.Add(1))
	srv.CreateBucket(t, bucket)
	for _, k := range objects {
		if _, err := srv.S3().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	return bucket
}

func s3Get(t *testing.T, srv *awstest.Server, bucket, key string) string {
	t.Helper()
	out, err := srv.S3().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return string(b)
}

func TestS3BounceStoreDedicated(t *testing.T) {
	t.Parallel()
	srv := awstest.Start(t)
	tests := []struct {
		name       string
		objects    []string
		prefix     string
		sameBucket bool // the queue's bucket (prefix "queue/")
		wantErr    string
		wantMarker string
	}{
		{name: "empty prefix adopted", prefix: "bounces", wantMarker: "bounces/.edgerelay-bounce-store"},
		{name: "trailing slash", prefix: "bounces/", wantMarker: "bounces/.edgerelay-bounce-store"},
		{name: "whole empty bucket", prefix: "", wantMarker: ".edgerelay-bounce-store"},
		{name: "only reports", objects: []string{"bounces/R-1.eml", "bounces/R_2.eml"}, prefix: "bounces", wantMarker: "bounces/.edgerelay-bounce-store"},
		{name: "other prefixes do not matter", objects: []string{"other/x.txt"}, prefix: "bounces", wantMarker: "bounces/.edgerelay-bounce-store"},
		{name: "foreign object", objects: []string{"bounces/INBOX/1.eml", "bounces/R-1.eml"}, prefix: "bounces", wantErr: "bounces/INBOX/1.eml"},
		{name: "foreign object, marker present", objects: []string{"bounces/.edgerelay-bounce-store", "bounces/notes.txt"}, prefix: "bounces"},
		{name: "is the queue location", prefix: "queue", sameBucket: true, wantErr: "queue's own location"},
		{name: "inside the queue location", prefix: "queue/ndr", sameBucket: true, wantErr: "inside the queue's location"},
		{name: "contains the queue location", prefix: "", sameBucket: true, wantErr: "contains the queue's location"},
		{name: "beside the queue in its bucket", prefix: "bounces", sameBucket: true, wantMarker: "bounces/.edgerelay-bounce-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := s3BounceBucket(t, srv, tt.objects...)
			queueBucket := "queue-elsewhere"
			if tt.sameBucket {
				queueBucket = bucket
			}
			st, err := bounce.NewS3(context.Background(), srv.S3(), bucket, tt.prefix, queueBucket, "queue/")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewS3: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewS3: %v", err)
			}
			if tt.wantMarker != "" && !strings.Contains(s3Get(t, srv, bucket, tt.wantMarker), "dedicated bounce store") {
				t.Errorf("marker object %s not written", tt.wantMarker)
			}
			if got, want := st.String(), "s3://"+bucket+"/"+strings.Trim(tt.prefix, "/"); strings.TrimSuffix(got, "/") != strings.TrimSuffix(want, "/") {
				t.Errorf("String() = %q, want %q", got, want)
			}
		})
	}
}

// TestS3BounceStorePutOnce: a report is stored once; later and concurrent
// Puts of the same key leave the first one, small or multipart.
func TestS3BounceStorePutOnce(t *testing.T) {
	t.Parallel()
	srv := awstest.Start(t)
	bucket := s3BounceBucket(t, srv)
	st, err := bounce.NewS3(context.Background(), srv.S3(), bucket, "ndr/", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := st.Put(ctx, "R-1", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "R-1", strings.NewReader("second")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if got := s3Get(t, srv, bucket, "ndr/R-1.eml"); got != "first" {
		t.Errorf("R-1 = %q, want the first report", got)
	}

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if err := st.Put(ctx, "R-2", strings.NewReader(fmt.Sprintf("writer %d", i))); err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		})
	}
	wg.Wait()
	if got := s3Get(t, srv, bucket, "ndr/R-2.eml"); !strings.HasPrefix(got, "writer ") {
		t.Errorf("R-2 = %q", got)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB: two parts
	if err := st.Put(ctx, "R-3", io.MultiReader(bytes.NewReader(big))); err != nil {
		t.Fatalf("large Put: %v", err)
	}
	if err := st.Put(ctx, "R-3", strings.NewReader("small")); err != nil {
		t.Fatal(err)
	}
	if got := s3Get(t, srv, bucket, "ndr/R-3.eml"); got != string(big) {
		t.Errorf("R-3: %d bytes, want the %d of the first Put", len(got), len(big))
	}

	if err := st.Put(ctx, "../evil", strings.NewReader("x")); err == nil {
		t.Error("Put accepted the key ../evil")
	}
	keys := srv.Keys(t, bucket, "")
	if want := []string{"ndr/.edgerelay-bounce-store", "ndr/R-1.eml", "ndr/R-2.eml", "ndr/R-3.eml"}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("objects = %v, want %v", keys, want)
	}

	// A reopen finds its own marker and reports and adopts the prefix.
	if _, err := bounce.NewS3(ctx, srv.S3(), bucket, "ndr", "", ""); err != nil {
		t.Errorf("reopen: %v", err)
	}
}

// TestOpenBounceStoreS3: a spec s3://bucket/prefix reaches
// NewS3 through Options.S3.
func TestOpenBounceStoreS3(t *testing.T) {
	t.Parallel()
	srv := awstest.Start(t)
	bucket := s3BounceBucket(t, srv)
	opener := func(b, p string) (bounce.Store, error) {
		return bounce.NewS3(context.Background(), srv.S3(), b, p, bucket, "queue/")
	}
	st, err := bounce.Open("s3://"+bucket+"/bounces", bounce.Options{S3: opener})
	if err != nil || st.String() != "s3://"+bucket+"/bounces/" {
		t.Fatalf("Open: %v, %v", st, err)
	}
	if _, err := bounce.Open("s3://"+bucket+"/queue", bounce.Options{S3: opener}); err == nil || !strings.Contains(err.Error(), "bounce store") {
		t.Fatalf("the queue's own prefix: %v, want a bounce store error", err)
	}
}
