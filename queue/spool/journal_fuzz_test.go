package spool

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzJournalSegment replays arbitrary bytes as a journal segment: it
// must end (in time linear in the input), never panic, and never yield a
// record whose CRC does not match (every record handed out is checked
// again here), nor a MSG whose sections fall outside its record.
func FuzzJournalSegment(f *testing.F) {
	msg := func(id, body, env string) []byte {
		buf := make([]byte, msgBodyOffset(id)+len(body), msgBodyOffset(id)+len(body)+len(env))
		copy(buf[msgBodyOffset(id):], body)
		return encodeMsgRecord(buf, id, 42, len(body), []byte(env))
	}
	env := `{"id":"A","from":"a@example.com","recipients":[{"addr":"b@example.net","status":"pending"}]}`
	seg := append(msg("A", "hello\r\n", env), encodeClaimRecord("A", 42, leaseRec{seq: 1, leaseUntil: time.Unix(2e9, 0), attempts: 1})...)
	seg = append(seg, encodeEndRecord("A", 42)...)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add([]byte(recMagic + "\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		replayBounded(t, data)
		// The same bytes with the CRC of every record that is framed
		// right made to match, so that the fuzzer reaches the decoding of
		// each record type and the replay of their sequence.
		replayBounded(t, sealAll(data))
	})
}

// sealAll returns a copy of data in which every record framed right
// (magic, a length in range that fits) from the start has its CRC set.
func sealAll(data []byte) []byte {
	b := bytes.Clone(data)
	for off := 0; off+recHeaderLen <= len(b) && string(b[off:off+4]) == recMagic; {
		l := int(leUint32(b[off+4:]))
		if l < recHeaderLen+9 || off+l > len(b) {
			break
		}
		r := b[off : off+l]
		c := recordCRC(r)
		r[8], r[9], r[10], r[11] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
		off += l
	}
	return b
}

// replayBounded replays data as a segment and checks the invariants, in
// a time bound.
func replayBounded(t *testing.T, data []byte) {
	{
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			st := &journalState{live: map[string]*jmsg{}, log: func(string, ...any) {}}
			sg := &segment{path: "fuzz"}
			good, err := readRecords(bytes.NewReader(data), func(r jrec, off int64) error {
				b := data[off : off+r.length]
				if recordCRC(b) != leUint32(b[8:]) {
					t.Errorf("record at %d handed out with a bad CRC", off)
				}
				if r.typ == recMsg && (r.bodyOff+r.bodyLen > r.length || r.envOff+r.envLen != r.length || r.bodyLen < 0) {
					t.Errorf("MSG at %d: sections outside the record", off)
				}
				st.apply(sg, r, off)
				return nil
			})
			if good > int64(len(data)) || good < 0 {
				t.Errorf("valid prefix %d of %d bytes", good, len(data))
			}
			if err != nil && !errors.Is(err, errBadRecord) {
				t.Errorf("replay error that is not errBadRecord: %v", err)
			}
			if err == nil && good != int64(len(data)) {
				t.Errorf("replay ended at %d of %d bytes without an error", good, len(data))
			}
			if sg.live != len(st.live)+len(st.older) || sg.live < 0 {
				t.Errorf("segment counts %d live messages, replay left %d (%d superseded)", sg.live, len(st.live), len(st.older))
			}
			if err != nil {
				// The search for a valid record after the bad one (damage
				// or a torn tail) ends, and finds only valid records.
				at, ferr := findRecord(bytes.NewReader(data), good+1, int64(len(data)))
				if ferr != nil || at >= int64(len(data)) || at >= 0 && at <= good {
					t.Errorf("findRecord after %d = %d, %v", good, at, ferr)
				}
				if at >= 0 {
					l := int64(leUint32(data[at+4:]))
					if _, derr := decodeRecord(data[at : at+l]); derr != nil {
						t.Errorf("findRecord found an invalid record at %d: %v", at, derr)
					}
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("replay of %d bytes did not end in %v", len(data), time.Since(start))
		}
	}
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
