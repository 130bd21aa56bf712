package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// FuzzSpoolRecord: decoding a message file read from disk (header, lease
// slots, embedded envelope) or an envelope file never panics or hangs
// (each case within 2 s), and either fails with errCorruptEnvelope (the
// message is quarantined) or yields an envelope for that ID that passes
// Validate and survives a write and a second read unchanged (message file:
// the body section, the envelope and the current claim too).
func FuzzSpoolRecord(f *testing.F) {
	env := &queue.Envelope{ID: "A", From: "a@b.example",
		Recipients: []queue.Recipient{{Addr: "c@d.example", ORCPT: "rfc822;c@d.example", Notify: []string{queue.NotifyFailure}, Status: queue.StatusPending,
			Reply: &queue.Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{"later"}}}},
		Arrival: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Attempts: 2, Size: 4}
	good, _ := json.Marshal(envFile{Envelope: env, Instance: 7, LeaseSeq: 3})
	msg, _ := encodeMessage(7, env, []byte("body"), leaseRec{seq: 5, leaseUntil: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC), attempts: 3, crashes: 1})
	torn := slices.Clone(msg)
	copy(torn[slot1+4:], "\xff\xff") // slot 1 (seq 5) torn: slot 0 is empty
	for _, seed := range []string{
		string(good), string(msg), string(torn), string(msg[:bodyOffset]), string(msg[:len(msg)-1]),
		"", "null", "{}", `{"id":"A"}`, `{"id":"A","recipients":[]}`,
		`{"id":"A","recipients":[{"addr":"x\u0000@y"}]}`, `{"id":"A","recipients":[{"addr":"x@y"}],"lease_until":"bad"}`,
		`{"id":"A","recipients":[{"addr":"x@y"}],"crashes":-5,"attempts":1e30}`, `[`, "\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		type result struct {
			rec *spoolRecord
			err error
		}
		isMsg := strings.HasPrefix(data, msgMagic)
		done := make(chan result, 1)
		go func() {
			if isMsg {
				rec, err := decodeMessage("A", []byte(data))
				done <- result{rec, err}
				return
			}
			env, err := decodeEnvFile("A", []byte(data))
			if err != nil {
				done <- result{nil, err}
				return
			}
			done <- result{&spoolRecord{Envelope: env.Envelope}, nil}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("decoding did not return within 2s for %d bytes", len(data))
		}
		if r.err != nil {
			if !errors.Is(r.err, errCorruptEnvelope) {
				t.Fatalf("error %v does not wrap errCorruptEnvelope", r.err)
			}
			return
		}
		if r.rec.Envelope == nil || r.rec.ID != "A" {
			t.Fatalf("decoded %+v for message A", r.rec)
		}
		if err := r.rec.Validate(); err != nil {
			t.Fatalf("decoded an envelope that fails Validate: %v", err)
		}
		if !isMsg {
			again, err := json.Marshal(envFile{Envelope: r.rec.Envelope})
			if err != nil {
				t.Fatalf("cannot write back what was read: %v", err)
			}
			env2, err := decodeEnvFile("A", again)
			if err != nil {
				t.Fatalf("what was written back cannot be read: %v\n%s", err, again)
			}
			third, _ := json.Marshal(envFile{Envelope: env2.Envelope})
			if string(third) != string(again) {
				t.Fatalf("not stable across a write and a read:\n%s\n%s", again, third)
			}
			return
		}
		// A message file: write it back as Enqueue and a claim would (the
		// embedded envelope as read, before the claim's Attempts) and read
		// it again.
		h := r.rec.hdr
		body := []byte(data[h.bodyOff : h.bodyOff+h.bodyLen])
		embedded, err := decodeEnvFile("A", []byte(data[h.envOff:h.envOff+h.envLen]))
		if err != nil {
			t.Fatalf("embedded envelope: %v", err)
		}
		again, err := encodeMessage(h.instance, embedded.Envelope, body, r.rec.lease)
		if err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		rec2, err := decodeMessage("A", again)
		if err != nil {
			t.Fatalf("what was written back cannot be read: %v", err)
		}
		h2 := rec2.hdr
		embedded2, err := decodeEnvFile("A", again[h2.envOff:h2.envOff+h2.envLen])
		if err != nil {
			t.Fatalf("embedded envelope written back: %v", err)
		}
		third, err := encodeMessage(h2.instance, embedded2.Envelope, again[h2.bodyOff:h2.bodyOff+h2.bodyLen], rec2.lease)
		if err != nil || string(third) != string(again) {
			t.Fatalf("not stable across a write and a read (%v)", err)
		}
		j1, _ := json.Marshal(r.rec.Envelope)
		j2, _ := json.Marshal(rec2.Envelope)
		if string(j1) != string(j2) || !r.rec.LeaseUntil.Equal(rec2.LeaseUntil) || r.rec.Crashes != rec2.Crashes || rec2.hdr.bodyLen != int64(len(body)) {
			t.Fatalf("the record changed across a write and a read:\n%s %v %d\n%s %v %d", j1, r.rec.LeaseUntil, r.rec.Crashes, j2, rec2.LeaseUntil, rec2.Crashes)
		}
	})
}

// FuzzSpoolCrash drives a spool through a fuzzed sequence of enqueues,
// claims, reschedules, completions and clock jumps on a faultFS that loses
// power at a fuzzed operation, then reopens it on the real file system and
// checks the crash invariants of crash_test.go: no acknowledged
// message lost, no completed one back, every envelope readable with its
// whole body, no orphan or temporary file, and nothing due again while its
// claim may still be running. Each case must end within 2 s.
func FuzzSpoolCrash(f *testing.F) {
	f.Add(uint8(5), []byte{0, 0, 1, 2, 1, 3})
	f.Add(uint8(30), []byte{0, 1, 4, 2, 1, 3, 0, 1})
	f.Add(uint8(14), []byte{0, 0, 0, 1, 1, 1, 3, 2, 3})
	f.Add(uint8(0), []byte{0, 1, 2, 1, 2, 1, 3})
	f.Fuzz(func(t *testing.T, crashAt uint8, ops []byte) {
		if len(ops) > 24 {
			ops = ops[:24]
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			runCrashOps(t, int(crashAt), ops)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("a run of %d operations did not end within 2s", len(ops))
		}
	})
}

func runCrashOps(t *testing.T, crashAt int, ops []byte) {
	h := newCrashHarness(t)
	defer h.cfail()
	h.open()
	h.fs.arm(crashAt, true)
	var held []*queue.Message
	n := 0
	for i := 0; i < len(ops) && !h.fs.fired(); i++ {
		switch op := ops[i]; op % 5 {
		case 0:
			n++
			h.enqueue(fmt.Sprintf("M%d", n))
		case 1:
			h.s.mu.Lock()
			due := len(h.s.due) > 0 && !h.s.due[0].next.After(h.now)
			h.s.mu.Unlock()
			if due {
				ctx, cancel := context.WithTimeout(h.ctx, time.Second)
				if m, err := h.s.Lease(ctx); err == nil {
					h.leased[m.Envelope.ID] = h.now.Add(h.o.LeaseTimeout)
					held = append(held, m)
				}
				cancel()
			}
		case 2, 3:
			if len(held) == 0 {
				continue
			}
			m := held[int(op/5)%len(held)]
			held = deleteMsg(held, m)
			id := m.Envelope.ID
			if op%5 == 2 {
				m.Envelope.Recipients[0].Status = queue.StatusDelivered
				if h.s.Reschedule(h.ctx, m, h.now.Add(time.Duration(op/5%3)*time.Minute)) == nil {
					delete(h.leased, id)
				}
			} else {
				delete(h.must, id) // whatever Complete returns, it may be gone
				if h.s.Complete(h.ctx, m) == nil {
					h.gone[id] = true
				}
				delete(h.leased, id)
			}
		case 4:
			h.now = h.now.Add(time.Duration(op/5) * time.Minute)
		}
	}
	h.s.Close()
	h.fs.powerLoss()
	h.verify(fmt.Sprintf("crash at op %d of %v", crashAt, ops))
}

func deleteMsg(ms []*queue.Message, m *queue.Message) []*queue.Message {
	for i := range ms {
		if ms[i] == m {
			return append(ms[:i], ms[i+1:]...)
		}
	}
	return ms
}
