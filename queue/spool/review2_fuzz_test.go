package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// FuzzSpoolMessageFile: a message file whose header and lease slots carry
// valid checksums around fuzzed fields (FuzzSpoolRecord's inputs almost
// never get past the header's CRC-32C, so its range checks went untried):
// offsets and lengths anywhere in 0…2^64, slots of any sequence and time.
// Through a real spool on disk (Open, Lease, Body, Close) and in memory
// (decodeMessage): no panic, each case within 5 s, allocation bounded by
// the file's size (not by what the header announces), Open never fails,
// and the message is either served whole (Lease hands it out, Body yields
// exactly the announced body, inside the file) or in quarantine with its
// bytes unchanged: quarantined, never crashed.
func FuzzSpoolMessageFile(f *testing.F) {
	env := reviewEnvelope("A")
	good, err := encodeMessage(7, env, []byte("body\r\n"), leaseRec{seq: 3, leaseUntil: time.Unix(1e9, 0), attempts: 2, crashes: 1})
	if err != nil {
		f.Fatal(err)
	}
	hdr := func(off int) uint64 { return binary.LittleEndian.Uint64(good[off:]) }
	s0, s1 := good[slot0:slot0+slotLen], good[slot1:slot1+slotLen]
	f.Add(hdr(24), hdr(32), hdr(40), hdr(48), hdr(16), s0, s1, true, good[bodyOffset:])
	f.Add(hdr(24), uint64(1<<62), hdr(40), hdr(48), hdr(16), s0, s1, true, good[bodyOffset:])
	f.Add(hdr(24), hdr(32), hdr(40), uint64(1<<63), hdr(16), s0, s1, true, good[bodyOffset:])
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), []byte{}, []byte{}, false, []byte{})
	f.Add(hdr(24), ^uint64(0)-511, uint64(0), hdr(48), hdr(16), s0, s1, true, good[bodyOffset:])
	f.Fuzz(func(t *testing.T, bo, bl, eo, el, inst uint64, sl0, sl1 []byte, fixSlots bool, tail []byte) {
		if len(tail) > 1<<16 {
			tail = tail[:1<<16]
		}
		data := make([]byte, bodyOffset, bodyOffset+len(tail))
		copy(data, msgMagic)
		binary.LittleEndian.PutUint32(data[8:], msgVersion)
		for i, v := range []uint64{inst, bo, bl, eo, el} {
			binary.LittleEndian.PutUint64(data[16+8*i:], v)
		}
		binary.LittleEndian.PutUint32(data[60:], crc32.Checksum(data[:60], castagnoli))
		for _, s := range []struct {
			off int
			b   []byte
		}{{slot0, sl0}, {slot1, sl1}} {
			copy(data[s.off:s.off+slotLen], s.b)
			if fixSlots {
				binary.LittleEndian.PutUint32(data[s.off+36:], crc32.Checksum(data[s.off:s.off+36], castagnoli))
			}
		}
		data = append(data, tail...)

		done := make(chan struct{})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		go func() {
			defer close(done)
			fuzzMessageFile(t, data)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("a message file of %d bytes was not handled within 5s", len(data))
		}
		runtime.ReadMemStats(&after)
		if a, limit := after.TotalAlloc-before.TotalAlloc, uint64(16*len(data)+16<<20); a > limit {
			t.Fatalf("handling a message file of %d bytes allocated %d bytes (limit %d)", len(data), a, limit)
		}
	})
}

func fuzzMessageFile(t *testing.T, data []byte) {
	if rec, err := decodeMessage("A", data); err == nil {
		if end := rec.hdr.bodyOff + rec.hdr.bodyLen; rec.hdr.bodyOff < bodyOffset || end > int64(len(data)) || end > rec.hdr.envOff {
			t.Errorf("decodeMessage accepted a body section %d+%d in a file of %d bytes (envelope at %d)", rec.hdr.bodyOff, rec.hdr.bodyLen, len(data), rec.hdr.envOff)
			return
		}
	}
	dir := t.TempDir()
	for _, d := range []string{spoolMsgDir, spoolTmpDir, spoolQuarantineDir} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o700))
	}
	must(t, os.WriteFile(filepath.Join(dir, spoolMsgDir, "A.msg"), data, 0o600))
	s, err := Open(dir, Options{PollInterval: time.Millisecond, Now: func() time.Time { return time.Unix(2e9, 0) }})
	if err != nil {
		t.Errorf("Open failed on a corrupt message file: %v", err)
		return
	}
	defer s.Close()
	if s.Len() == 0 {
		q, err := os.ReadFile(filepath.Join(dir, spoolQuarantineDir, "A.msg"))
		if err != nil || !bytes.Equal(q, data) {
			t.Errorf("message neither indexed nor whole in quarantine: %d bytes, %v", len(q), err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		// Not due (a lease slot far ahead) or set aside at the claim: then it is in quarantine.
		if _, qerr := os.Stat(filepath.Join(dir, spoolQuarantineDir, "A.msg")); s.Len() == 0 && qerr != nil {
			t.Errorf("Lease = %v and the message is gone from the index but not in quarantine", err)
		}
		return
	}
	rec, err := decodeMessage("A", data)
	if err != nil {
		t.Errorf("Lease handed out a message decodeMessage refuses: %v", err)
		return
	}
	body, err := s.Body(t.Context(), m)
	if err != nil {
		t.Errorf("Body of a leased message: %v", err)
		return
	}
	defer body.Close()
	got, err := io.ReadAll(io.LimitReader(body, int64(len(data))+1))
	want := data[rec.hdr.bodyOff : rec.hdr.bodyOff+rec.hdr.bodyLen]
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Body = %d bytes, %v; want the %d bytes of the body section", len(got), err, len(want))
	}
}
