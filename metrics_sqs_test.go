package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestMetricsSQSGauges: with the SQS queue, /metrics shows the emulator's
// approximate counts by state; with SQS unreachable the scrape still
// succeeds, with the last counts and the failed call counted.
func TestMetricsSQSGauges(t *testing.T) {
	srv := awstest.Start(t)
	name := awstest.UniqueName("metrics")
	url := srv.CreateQueue(t, name, nil)
	srv.CreateBucket(t, name)
	q, err := sqs.Open(context.Background(), sqs.Options{SQS: srv.SQS(), S3: srv.S3(), QueueURL: url, Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	env := &queue.Envelope{From: "a@example.org", Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}
	if _, err := q.Enqueue(context.Background(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	m.addSQS(q)
	scrapeValue := func(name string, labels ...string) (float64, bool) {
		t.Helper()
		rec := httptest.NewRecorder()
		m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != 200 {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		checkREADMEListsMetrics(t, fams)
		s := sample(fams, name, labels...)
		switch {
		case s == nil:
			return 0, false
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		}
		return s.Counter.GetValue(), true
	}
	for state, want := range map[string]float64{"visible": 1, "not_visible": 0, "delayed": 0} {
		if v, ok := scrapeValue("edgerelay_queue_sqs_messages", "state", state); !ok || v != want {
			t.Errorf("state %s: %v (present %v), want %v", state, v, ok, want)
		}
	}
	srv.SetDown("sqs", true)
	defer srv.SetDown("sqs", false)
	// The cache asks again only after 15 s: a new collector asks at once.
	m = newMetrics()
	m.addSQS(q)
	start := time.Now()
	if _, ok := scrapeValue("edgerelay_queue_sqs_messages", "state", "visible"); ok {
		t.Error("counts shown although SQS never answered this collector")
	}
	if v, ok := scrapeValue("edgerelay_queue_sqs_depth_errors_total"); !ok || v != 1 {
		t.Errorf("errors %v (present %v), want 1", v, ok)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("scrapes with SQS down took %v", el)
	}
}
