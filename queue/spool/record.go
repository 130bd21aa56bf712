package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// The message file, msg/<id>.msg (all integers little-endian):
//
//	0    header (headerLen bytes, CRC-32C at the end)
//	       magic "ERSPOOL\x00", version, instance,
//	       body offset and length, envelope offset and length
//	128  lease slot 0  (slotLen bytes, CRC-32C at the end)
//	192  lease slot 1
//	512  the body, exactly as received (bodyOffset)
//	     the envelope, JSON, as it was enqueued
//
// The header is written once, in place at offset 0 after the body and the
// envelope, before the file's one fsync; it never changes afterwards. A
// claim writes one lease slot in place (pwrite + fdatasync): slot seq%2, so
// the slot of the previous claim is never the one being written, and a torn
// write (its CRC fails) falls back to it. Reading takes the valid slot with
// the highest sequence; an all-zero slot (sequence 0) is no claim.
const (
	msgMagic   = "ERSPOOL\x00"
	msgVersion = 1

	headerLen  = 64
	slotLen    = 40
	slot0      = 128
	slot1      = 192
	bodyOffset = 512

	// maxEnvelopeLen bounds the envelope section a header may announce, so
	// that a damaged header cannot make a read allocate without bound.
	maxEnvelopeLen = 64 << 20
	// maxEnvFileLen bounds an envelope file (msg/<id>.env): the envelope
	// and the few fields around it. A larger one is corrupt: it is never
	// read into memory.
	maxEnvFileLen = maxEnvelopeLen + 4096

	// maxLeaseSeq bounds a lease sequence read from disk: claims never get
	// near it, and one above it is corrupt (the next claim's sequence would
	// wrap to 0, which reads as "no claim").
	maxLeaseSeq = 1 << 62
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorruptEnvelope marks a message file or envelope file that was read
// but cannot be used; such a message is quarantined.
var errCorruptEnvelope = errors.New("corrupt envelope")

// msgHeader is the decoded header of a message file.
type msgHeader struct {
	// instance tells this message file from another of the same ID (the
	// same report enqueued again after a Complete): an envelope file
	// (Reschedule) applies only to the instance it names.
	instance         uint64
	bodyOff, bodyLen int64
	envOff, envLen   int64
}

// leaseRec is one lease slot: a claim of the message.
type leaseRec struct {
	seq        uint64    // 0: no claim
	leaseUntil time.Time // when the claim's lease ends
	attempts   int       // Envelope.Attempts with this claim counted
	crashes    int       // earlier claims that never ended, in a row
}

// newInstance returns a random, non-zero message file instance.
func newInstance() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

func encodeHeader(h msgHeader) []byte {
	b := make([]byte, headerLen)
	copy(b, msgMagic)
	binary.LittleEndian.PutUint32(b[8:], msgVersion)
	binary.LittleEndian.PutUint64(b[16:], h.instance)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.bodyOff))
	binary.LittleEndian.PutUint64(b[32:], uint64(h.bodyLen))
	binary.LittleEndian.PutUint64(b[40:], uint64(h.envOff))
	binary.LittleEndian.PutUint64(b[48:], uint64(h.envLen))
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// decodeHeader checks the first bodyOffset bytes of a message file of
// size bytes; every error wraps errCorruptEnvelope.
func decodeHeader(b []byte, size int64) (msgHeader, error) {
	var h msgHeader
	if len(b) < bodyOffset {
		return h, fmt.Errorf("%w: message file too short (%d bytes)", errCorruptEnvelope, size)
	}
	if string(b[:8]) != msgMagic {
		return h, fmt.Errorf("%w: not a message file (bad magic)", errCorruptEnvelope)
	}
	if crc32.Checksum(b[:60], castagnoli) != binary.LittleEndian.Uint32(b[60:]) {
		return h, fmt.Errorf("%w: message file header checksum mismatch", errCorruptEnvelope)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != msgVersion {
		return h, fmt.Errorf("%w: message file version %d unknown", errCorruptEnvelope, v)
	}
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	h.instance = u(16)
	bo, bl, eo, el := u(24), u(32), u(40), u(48)
	if bo != bodyOffset || bl > 1<<62 || el > maxEnvelopeLen || eo != bo+bl || eo+el != uint64(size) || h.instance == 0 {
		return h, fmt.Errorf("%w: message file header does not match the file (%d bytes; body %d+%d, envelope %d+%d)",
			errCorruptEnvelope, size, bo, bl, eo, el)
	}
	h.bodyOff, h.bodyLen, h.envOff, h.envLen = int64(bo), int64(bl), int64(eo), int64(el)
	return h, nil
}

// slotOffset is where the lease slot for sequence seq lives.
func slotOffset(seq uint64) int64 {
	if seq%2 == 0 {
		return slot0
	}
	return slot1
}

func encodeSlot(l leaseRec) []byte {
	b := make([]byte, slotLen)
	binary.LittleEndian.PutUint64(b[0:], l.seq)
	if !l.leaseUntil.IsZero() {
		binary.LittleEndian.PutUint64(b[8:], uint64(l.leaseUntil.UnixNano()))
	}
	binary.LittleEndian.PutUint32(b[16:], uint32(max(0, min(l.attempts, 1<<31-1))))
	binary.LittleEndian.PutUint32(b[20:], uint32(max(0, min(l.crashes, 1<<31-1))))
	binary.LittleEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

// decodeSlot reads a slot; ok is false for an empty or damaged one (a
// claim whose write was torn: the other slot holds the one before).
func decodeSlot(b []byte) (l leaseRec, ok bool) {
	if crc32.Checksum(b[:36], castagnoli) != binary.LittleEndian.Uint32(b[36:]) {
		return l, false
	}
	l.seq = binary.LittleEndian.Uint64(b[0:])
	if ns := int64(binary.LittleEndian.Uint64(b[8:])); ns != 0 {
		l.leaseUntil = time.Unix(0, ns).UTC()
	}
	l.attempts = int(binary.LittleEndian.Uint32(b[16:]) & (1<<31 - 1))
	l.crashes = int(binary.LittleEndian.Uint32(b[20:]) & (1<<31 - 1))
	if l.seq > maxLeaseSeq {
		return leaseRec{}, false // damaged: the other slot counts
	}
	return l, l.seq != 0
}

// currentLease is the valid lease slot with the highest sequence in the
// header block b (zero when there is none).
func currentLease(b []byte) leaseRec {
	l0, ok0 := decodeSlot(b[slot0 : slot0+slotLen])
	l1, ok1 := decodeSlot(b[slot1 : slot1+slotLen])
	switch {
	case ok0 && ok1 && l1.seq > l0.seq, !ok0 && ok1:
		return l1
	case ok0:
		return l0
	}
	return leaseRec{}
}

// envFile is the JSON of an envelope: embedded in a message file (only
// the Envelope), in msg/<id>.env after a Reschedule (with Instance and
// LeaseSeq), or in the layout before issue 10 (msg/<id>.env beside
// msg/<id>.eml, with LeaseUntil and Crashes), read only to migrate it.
type envFile struct {
	*queue.Envelope
	// Instance names the message file this envelope supersedes: an envelope
	// file of another instance is a leftover (of a Complete) and is ignored.
	Instance uint64 `json:"msg_instance,omitempty"`
	// LeaseSeq is the claim this Reschedule ended: a lease slot with this
	// sequence or a lower one is over.
	LeaseSeq uint64 `json:"lease_seq,omitempty"`
	// The claim of the layout before issue 10.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	Crashes    int       `json:"crashes,omitempty"`
}

// decodeEnvFile decodes envelope JSON of message id; every error wraps
// errCorruptEnvelope.
func decodeEnvFile(id string, data []byte) (*envFile, error) {
	rec := envFile{Envelope: new(queue.Envelope)}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptEnvelope, err)
	}
	if rec.Envelope == nil {
		return nil, fmt.Errorf("%w: no envelope", errCorruptEnvelope)
	}
	if rec.LeaseSeq > maxLeaseSeq {
		return nil, fmt.Errorf("%w: lease sequence %d out of range", errCorruptEnvelope, rec.LeaseSeq)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("%w: ID %q does not match its file name", errCorruptEnvelope, rec.ID)
	}
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptEnvelope, err)
	}
	return &rec, nil
}

// spoolRecord is the state of one message as read from its files: the
// current envelope (the envelope file's when it applies, else the one
// embedded in the message file) with Attempts as the last claim left it,
// and the claim, if one is unfinished.
type spoolRecord struct {
	*queue.Envelope
	// LeaseUntil is set when the last claim did not end (no Reschedule
	// after it): found at Open, the process died during the delivery, and
	// the message is due no earlier than this.
	LeaseUntil time.Time
	// Crashes counts the claims that never ended before the last one,
	// since the last Reschedule.
	Crashes int

	hdr      msgHeader
	lease    leaseRec // the current lease slot
	leaseSeq uint64   // the claim the envelope file ended (0: none)
	stale    bool     // an envelope file of another instance was ignored
}

// combine makes the record of a message from its header, current lease
// slot and envelope (ov: the envelope file's, when it applies).
func combine(h msgHeader, l leaseRec, env *envFile, ov bool) *spoolRecord {
	rec := &spoolRecord{Envelope: env.Envelope, hdr: h, lease: l}
	if ov {
		rec.leaseSeq = env.LeaseSeq
	}
	if l.seq > rec.leaseSeq {
		rec.Attempts = l.attempts
		rec.LeaseUntil = l.leaseUntil
		rec.Crashes = l.crashes
	}
	return rec
}

// nextSeq is the sequence of the next claim of rec.
func (rec *spoolRecord) nextSeq() uint64 { return max(rec.lease.seq, rec.leaseSeq) + 1 }

// readRecord loads and checks the files of message id. An error wrapping
// errCorruptEnvelope means a file was read and cannot be used; any other
// error is the file system's and may be transient (fs.ErrNotExist: the
// message file is gone).
func (s *Spool) readRecord(id string) (*spoolRecord, error) {
	f, err := s.fs.Open(s.msgPath(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return s.readRecordFrom(id, f)
}

// readRecordFrom is readRecord on the message file f, open.
func (s *Spool) readRecordFrom(id string, f safefile.File) (*spoolRecord, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, bodyOffset)
	if n, err := f.ReadAt(b, 0); n < len(b) {
		if err == io.EOF || err == nil {
			return nil, fmt.Errorf("%w: message file too short (%d bytes)", errCorruptEnvelope, n)
		}
		return nil, err
	}
	h, err := decodeHeader(b, size)
	if err != nil {
		return nil, err
	}
	l := currentLease(b)
	var stale bool
	data, err := s.readEnvFile(s.envelopePath(id))
	switch {
	case err == nil:
		env, err := decodeEnvFile(id, data)
		if err != nil {
			return nil, err
		}
		if env.Instance == 0 || env.Instance == h.instance {
			return combine(h, l, env, true), nil
		}
		stale = true // a leftover of a Complete of an earlier message with this ID
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	data = make([]byte, h.envLen)
	if n, err := f.ReadAt(data, h.envOff); n < len(data) {
		if err == io.EOF || err == nil {
			return nil, fmt.Errorf("%w: message file cut short", errCorruptEnvelope)
		}
		return nil, err
	}
	env, err := decodeEnvFile(id, data)
	if err != nil {
		return nil, err
	}
	rec := combine(h, l, env, false)
	rec.stale = stale
	return rec, nil
}

// readEnvFile reads an envelope file without trusting its size: one
// larger than maxEnvFileLen (no Reschedule writes one) is corrupt
// (errCorruptEnvelope) and is not read; other errors are the file
// system's.
func (s *Spool) readEnvFile(path string) ([]byte, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > maxEnvFileLen {
		return nil, fmt.Errorf("%w: envelope file of %d bytes (at most %d)", errCorruptEnvelope, size, maxEnvFileLen)
	}
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if n < len(data) && err != io.EOF {
		return nil, err
	}
	return data[:n], nil
}

// marshalEnvelope is the JSON of an envelope as stored, refused with
// queue.ErrInvalidEnvelope when larger than a message file's header may
// announce (maxEnvelopeLen): stored, it could not be read back.
func marshalEnvelope(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(data) > maxEnvelopeLen {
		return nil, fmt.Errorf("%w: envelope of %d bytes, more than the spool stores (%d)", queue.ErrInvalidEnvelope, len(data), maxEnvelopeLen)
	}
	return data, nil
}

// decodeMessage decodes a whole message file of message id held in memory
// (with no envelope file beside it); every error wraps errCorruptEnvelope.
// It is readRecordFrom without the file system, for the fuzz test.
func decodeMessage(id string, data []byte) (*spoolRecord, error) {
	if len(data) < bodyOffset {
		return nil, fmt.Errorf("%w: message file too short (%d bytes)", errCorruptEnvelope, len(data))
	}
	h, err := decodeHeader(data[:bodyOffset], int64(len(data)))
	if err != nil {
		return nil, err
	}
	env, err := decodeEnvFile(id, data[h.envOff:h.envOff+h.envLen])
	if err != nil {
		return nil, err
	}
	return combine(h, currentLease(data[:bodyOffset]), env, false), nil
}

// encodeMessage is the message file of env (its embedded envelope) with
// body and the given lease slot (none when seq is 0), as Enqueue writes it.
func encodeMessage(instance uint64, env *queue.Envelope, body []byte, l leaseRec) ([]byte, error) {
	data, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	out := make([]byte, bodyOffset, bodyOffset+len(body)+len(data))
	out = append(append(out, body...), data...)
	copy(out, encodeHeader(msgHeader{instance: instance, bodyOff: bodyOffset, bodyLen: int64(len(body)),
		envOff: bodyOffset + int64(len(body)), envLen: int64(len(data))}))
	if l.seq != 0 {
		copy(out[slotOffset(l.seq):], encodeSlot(l))
	}
	return out, nil
}
