package sqs

import (
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// FuzzOperatorObjects: the view and mark objects are read from a bucket
// that others can write to. Whatever bytes they hold, decoding returns in
// time, a view is accepted only for its own message, and a mark only ever
// sets a known operator action (or none).
func FuzzOperatorObjects(f *testing.F) {
	f.Add([]byte(`{"v":1,"hold":true,"operator":"bounce","retry_at":"2026-12-01T10:00:00Z"}`), "ID1")
	f.Add([]byte(`{"v":1,"envelope":{"id":"ID1","from":"a@b","recipients":[{"addr":"c@d","status":"pending"}]},"as_of":"2026-12-01T10:00:00Z","receipt":"r"}`), "ID1")
	f.Add([]byte(`{"operator":"explode\u0000","hold":"yes"}`), "x")
	f.Add([]byte("\xff\xfe{\"v\":1}\x00"), "")
	f.Add([]byte(`{"envelope":{"id":"OTHER"}}`), "ID1")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if v, err := parseView(data, id); err == nil && (v.Envelope == nil || v.Envelope.ID != id) {
				t.Errorf("view accepted for %q holding %+v", id, v.Envelope)
			}
			mk, err := parseMark(data)
			if err != nil {
				return
			}
			env := &queue.Envelope{Hold: true, Operator: "stale"}
			mergeMark(env, mk, time.Unix(0, 0))
			switch env.Operator {
			case "", queue.OperatorBounce, queue.OperatorDelete:
			default:
				t.Errorf("mark %q set operator %q", data, env.Operator)
			}
			if env.Hold != mk.Hold {
				t.Errorf("hold %v, mark says %v", env.Hold, mk.Hold)
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Second): // generous: CI shares its cores
			t.Fatalf("decoding %d bytes took over a second", len(data))
		}
	})
}
