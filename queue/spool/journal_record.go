package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// A journal record (all integers little-endian):
//
//	0   magic "ERJ1"
//	4   length of the whole record, header included (uint32)
//	8   CRC-32C of the whole record with these 4 bytes left out
//	12  type (recMsg, recClaim, recEnd)
//	13  length of the message ID (1..64)
//	14  reserved, 0
//	16  the message ID, then the payload:
//	      MSG    instance (8), body length (8), the body, the envelope JSON
//	             as enqueued (the rest of the record)
//	      CLAIM  instance (8), lease sequence (8), lease deadline in Unix
//	             ns (8), attempts (4), crashes (4)
//	      END    instance (8)
//
// A record is written with one write at the tail of the segment and is
// acknowledged only after an fdatasync that started after that write. The
// instance ties a CLAIM or END to one MSG: a message enqueued again with
// the same ID after a Complete is another instance.
const (
	recMagic     = "ERJ1"
	recHeaderLen = 16
	recMsg       = 1
	recClaim     = 2
	recEnd       = 3

	claimPayloadLen = 32
	// maxRecordLen bounds a record read from disk, so that a damaged
	// length cannot make replay allocate without bound: the largest
	// JournalMaxBytes allowed plus a header.
	maxRecordLen = maxJournalMaxBytes + 4096
)

// errBadRecord marks bytes that are not a whole, valid record: a torn
// tail, or damage.
var errBadRecord = errors.New("bad journal record")

// jrec is one decoded journal record. For MSG, bodyOff and envOff are
// offsets within the record.
type jrec struct {
	typ      byte
	id       string
	instance uint64
	length   int64
	// MSG
	bodyOff, bodyLen int64
	envOff, envLen   int64
	env              []byte
	// CLAIM
	lease leaseRec
}

// recordPrefixLen is the number of bytes of a record of ID id before its
// payload.
func recordPrefixLen(id string) int { return recHeaderLen + len(id) }

// msgBodyOffset is where the body starts in a MSG record of ID id.
func msgBodyOffset(id string) int { return recordPrefixLen(id) + 16 }

// putHeader fills the header and ID of a record of typ in b (its whole
// length, payload in place) and seals it with the CRC.
func sealRecord(b []byte, typ byte, id string) {
	copy(b, recMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	b[12], b[13] = typ, byte(len(id))
	b[14], b[15] = 0, 0
	copy(b[recHeaderLen:], id)
	binary.LittleEndian.PutUint32(b[8:], recordCRC(b))
}

func recordCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:8])
	return crc32.Update(c, castagnoli, b[12:])
}

// encodeMsgRecord returns a MSG record built in buf, whose bytes from
// msgBodyOffset(id) hold the body already (bodyLen bytes); env is appended.
func encodeMsgRecord(buf []byte, id string, instance uint64, bodyLen int, env []byte) []byte {
	p := recordPrefixLen(id)
	b := append(buf[:msgBodyOffset(id)+bodyLen], env...)
	binary.LittleEndian.PutUint64(b[p:], instance)
	binary.LittleEndian.PutUint64(b[p+8:], uint64(bodyLen))
	sealRecord(b, recMsg, id)
	return b
}

func encodeClaimRecord(id string, instance uint64, l leaseRec) []byte {
	p := recordPrefixLen(id)
	b := make([]byte, p+claimPayloadLen)
	binary.LittleEndian.PutUint64(b[p:], instance)
	binary.LittleEndian.PutUint64(b[p+8:], l.seq)
	if !l.leaseUntil.IsZero() {
		binary.LittleEndian.PutUint64(b[p+16:], uint64(l.leaseUntil.UnixNano()))
	}
	binary.LittleEndian.PutUint32(b[p+24:], uint32(max(0, min(l.attempts, 1<<31-1))))
	binary.LittleEndian.PutUint32(b[p+28:], uint32(max(0, min(l.crashes, 1<<31-1))))
	sealRecord(b, recClaim, id)
	return b
}

func encodeEndRecord(id string, instance uint64) []byte {
	p := recordPrefixLen(id)
	b := make([]byte, p+8)
	binary.LittleEndian.PutUint64(b[p:], instance)
	sealRecord(b, recEnd, id)
	return b
}

// decodeRecord checks and decodes the whole record b; every error wraps
// errBadRecord.
func decodeRecord(b []byte) (jrec, error) {
	var r jrec
	if len(b) < recHeaderLen || string(b[:4]) != recMagic {
		return r, fmt.Errorf("%w: bad magic", errBadRecord)
	}
	if int(binary.LittleEndian.Uint32(b[4:])) != len(b) {
		return r, fmt.Errorf("%w: length mismatch", errBadRecord)
	}
	if recordCRC(b) != binary.LittleEndian.Uint32(b[8:]) {
		return r, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	r.typ, r.length = b[12], int64(len(b))
	idLen := int(b[13])
	p := recHeaderLen + idLen
	if idLen == 0 || idLen > 64 || b[14] != 0 || b[15] != 0 || len(b) < p+8 {
		return r, fmt.Errorf("%w: bad header", errBadRecord)
	}
	r.id = string(b[recHeaderLen:p])
	r.instance = binary.LittleEndian.Uint64(b[p:])
	u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	switch r.typ {
	case recMsg:
		if len(b) < p+16 {
			return r, fmt.Errorf("%w: short MSG", errBadRecord)
		}
		bl := u(p + 8)
		if bl > uint64(len(b)-p-16) {
			return r, fmt.Errorf("%w: body length out of range", errBadRecord)
		}
		r.bodyOff, r.bodyLen = int64(p+16), int64(bl)
		r.envOff = r.bodyOff + r.bodyLen
		r.envLen = int64(len(b)) - r.envOff
		r.env = b[r.envOff:]
	case recClaim:
		if len(b) != p+claimPayloadLen {
			return r, fmt.Errorf("%w: bad CLAIM length", errBadRecord)
		}
		r.lease.seq = u(p + 8)
		if ns := int64(u(p + 16)); ns != 0 {
			r.lease.leaseUntil = time.Unix(0, ns).UTC()
		}
		r.lease.attempts = int(binary.LittleEndian.Uint32(b[p+24:]) & (1<<31 - 1))
		r.lease.crashes = int(binary.LittleEndian.Uint32(b[p+28:]) & (1<<31 - 1))
		if r.lease.seq == 0 || r.lease.seq > maxLeaseSeq {
			return r, fmt.Errorf("%w: lease sequence out of range", errBadRecord)
		}
	case recEnd:
		if len(b) != p+8 {
			return r, fmt.Errorf("%w: bad END length", errBadRecord)
		}
	default:
		return r, fmt.Errorf("%w: unknown type %d", errBadRecord, r.typ)
	}
	return r, nil
}

// readRecords reads the records of a segment from r, in order, handing each
// to fn with its offset; the MSG's env aliases a buffer that fn must not
// keep. It returns the offset of the end of the last valid record, and
// errBadRecord (with where) when bytes after it are not a valid record, or
// the reader's own error. It reads every byte at most once: every
// iteration consumes a record of at least recHeaderLen bytes or stops.
func readRecords(r io.Reader, fn func(rec jrec, off int64) error) (int64, error) {
	var off int64
	hdr := make([]byte, recHeaderLen)
	var buf []byte
	for {
		n, err := io.ReadFull(r, hdr)
		switch {
		case err == io.EOF:
			return off, nil
		case err == io.ErrUnexpectedEOF:
			return off, fmt.Errorf("%w: %d bytes of a header at offset %d", errBadRecord, n, off)
		case err != nil:
			return off, err
		}
		if string(hdr[:4]) != recMagic {
			return off, fmt.Errorf("%w: bad magic at offset %d", errBadRecord, off)
		}
		l := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if l < recHeaderLen+1+8 || l > maxRecordLen {
			return off, fmt.Errorf("%w: length %d out of range at offset %d", errBadRecord, l, off)
		}
		if int64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		b := buf[:l]
		copy(b, hdr)
		if _, err := io.ReadFull(r, b[recHeaderLen:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return off, fmt.Errorf("%w: record of %d bytes cut short at offset %d", errBadRecord, l, off)
			}
			return off, err
		}
		rec, err := decodeRecord(b)
		if err != nil {
			return off, fmt.Errorf("%w at offset %d", err, off)
		}
		if err := fn(rec, off); err != nil {
			return off, err
		}
		off += l
	}
}
