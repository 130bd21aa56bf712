package relay

import "io"

// fixupReserve is the room kept, out of MaxMessageBytes, for the fields
// the submission adds (RFC 6409 §8): Received (HELO name at most 255
// octets once sanitized, a host name, the TLS comment, and "for <rcpt>"
// only for a recipient of at most 256 octets, RFC 5321 §4.5.3.1.3), Date
// and Message-ID. Their worst case is about 1.4 KB.
//
// EHLO advertises SIZE = MaxMessageBytes − reserve, and Data checks that
// what it stores, fix-ups included, is at most MaxMessageBytes: a message
// accepted at the advertised limit then fits a next hop that advertises
// MaxMessageBytes (RFC 1870), instead of being refused there after our 250.
const fixupReserve = 2048

// advertisedSize is the SIZE that EHLO offers (and go-smtp enforces) for
// a limit of max octets stored: max less the reserve (half of max for a
// very small max). 0 means no limit.
func advertisedSize(max int64) int64 {
	if max <= 0 {
		return max
	}
	return max - min(fixupReserve, max/2)
}

// sizeLimit fails with errTooBig once more than max octets were read: the
// stored message, fix-ups included, never exceeds the configured maximum message size.
type sizeLimit struct {
	r   io.Reader
	max int64
	n   int64
}

func (l *sizeLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return 0, errTooBig
	}
	return n, err
}
