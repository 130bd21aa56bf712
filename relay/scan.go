package relay

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// ScanOptions turn on virus scanning: every message is streamed to the
// Scanner while the queue writes it, and the reply to its data waits for
// the verdict (see scanReader).
type ScanOptions struct {
	// Scanner is clamd (*Clamd). Required.
	Scanner Scanner
	// SkipSubmission leaves submissions (587, 465) unscanned, for sites
	// that scan elsewhere; the MX listener is scanned all the same.
	SkipSubmission bool
	// FailOpen accepts a message unscanned when the scanner cannot be
	// used (down, erroring, slow), with a WARN per message; otherwise such
	// a message is refused with 451 4.7.1.
	FailOpen bool
	// MaxBytes is the scanner's limit on one stream (clamd's
	// StreamMaxLength); 0: none. A message larger than this is handled by
	// AcceptOversize.
	MaxBytes int64
	// AcceptOversize accepts a message that declared (SIZE, RFC 1870) a
	// size over MaxBytes unscanned, with the ScanHeader field and a count,
	// once it really goes past MaxBytes (it is scanned until then: a
	// declaration is the client's word, and one that lies gets its small
	// message scanned all the same); otherwise it is refused with 552 5.3.4
	// at MAIL. Either way, a message that goes past MaxBytes without having
	// declared it is refused with 552 5.3.4: its header has been stored by
	// then, and it is never scanned in part.
	AcceptOversize bool
	// Observe, when set, is called once per scan (not for a message left
	// unscanned by its declared size), on the session's goroutine.
	Observe func(Scan)
}

// Scan is one scan's outcome, for metrics.
type Scan struct {
	// Result is ScanClean, ScanInfected, ScanError or ScanOversize.
	Result string
	// Duration is the scanner's own time: from the end of the stream to
	// its verdict (the wait it adds to the reply), or to its failure.
	Duration time.Duration
}

// Scan.Result values, and the reasons a message is accepted unscanned.
const (
	ScanClean    = "clean"
	ScanInfected = "infected"
	ScanError    = "error"    // the scanner could not be used
	ScanOversize = "oversize" // the stream went past MaxBytes (or clamd's limit)

	UnscannedFailOpen = "fail_open"
	UnscannedOversize = "oversize"
)

// ScanHeader is the field added to a message accepted unscanned because
// of its size. A client's fields of that name are never stored (fixups).
const ScanHeader = "X-Edgerelay-Scan"

// Scan replies.
var (
	errScanTempFail = reply(451, 4, 7, 1, "Virus scanner unavailable, try again later")
	errScanTooBig   = reply(552, 5, 3, 4, "Message too big for the virus scanner")
)

// errInfected names the signature (printable ASCII, from parseClamdReply).
func errInfected(sig string) *smtp.SMTPError {
	return reply(554, 5, 7, 1, "Message refused: virus found ("+sig+")")
}

// scanSizeCheck applies the size policy to a declared SIZE at MAIL: nil,
// or 552 5.3.4 when the message cannot be scanned and oversize messages
// are refused. skip reports that the message, declared too big, is to be
// accepted unscanned.
func scanSizeCheck(o *ScanOptions, declared int64) (rep *smtp.SMTPError, skip bool) {
	if o == nil || o.MaxBytes <= 0 || declared <= 0 {
		return nil, false
	}
	// The stream is the message as stored: fix-ups and Received included.
	if declared+fixupReserve <= o.MaxBytes {
		return nil, false
	}
	if o.AcceptOversize {
		return nil, true
	}
	return errScanTooBig, false
}

// sizeLimit is the largest message, fix-ups included, that the MX listener
// or submission takes: MaxMessageBytes, or the scanner's limit where it is
// lower and larger messages are refused, so that EHLO's SIZE says so
// (RFC 1870) and no client uploads a message only to be refused.
func (s *Server) sizeLimit(mx bool) int64 {
	max, o := s.opts.MaxMessageBytes, s.opts.Scan
	if o == nil || o.Scanner == nil || o.AcceptOversize || o.MaxBytes <= 0 || o.SkipSubmission && !mx {
		return max
	}
	if max <= 0 || o.MaxBytes < max {
		return o.MaxBytes
	}
	return max
}

// scanSizeAtMail refuses at MAIL, with 552 5.3.4, a message whose SIZE
// (RFC 1870 §6.1) is too big to be scanned when such messages are refused.
func (ss *session) scanSizeAtMail(opts *smtp.MailOptions) error {
	if opts == nil {
		return nil
	}
	if rep, _ := scanSizeCheck(ss.scanOpts(), opts.Size); rep != nil {
		return rep
	}
	return nil
}

// unscannedField is the ScanHeader field of a message accepted unscanned
// for its size.
func unscannedField(max int64) string {
	return fmt.Sprintf("%s: not scanned: larger than the virus scanner's limit of %d bytes\r\n", ScanHeader, max)
}

// scanOpts returns the scanning that applies to this session's messages
// (on the MX listener whatever SkipSubmission says), or nil.
func (ss *session) scanOpts() *ScanOptions {
	o := ss.srv.opts.Scan
	if o == nil || o.Scanner == nil || o.SkipSubmission && ss.mx == nil {
		return nil
	}
	return o
}

// scanPlan decides, at the data of t, whether its message is scanned, and
// returns the ScanHeader field to add when it may be accepted unscanned
// for its declared size (it is scanned until it goes past MaxBytes: see
// scanReader.overOK).
func (ss *session) scanPlan(t *txn) (o *ScanOptions, field string) {
	o = ss.scanOpts()
	if o == nil {
		return nil, ""
	}
	if _, skip := scanSizeCheck(o, t.opts.Size); skip {
		return o, unscannedField(o.MaxBytes)
	}
	return o, ""
}

// scanExplain turns the queue's failure to read a scanned body into the
// scan's refusal, logged with the signature for an infected message;
// other errors pass through.
func (ss *session) scanExplain(sr *scanReader, t *txn, err error, log *slog.Logger) error {
	if sr == nil || sr.refusal == nil {
		return err
	}
	if sr.refusal.signature != "" {
		// The session's logger has the client's address, and the user
		// once authenticated.
		log.Warn("message refused: virus found", "from", t.from, "signature", sr.refusal.signature)
	}
	return sr.refusal.reply
}

// scanCounters count scans for ScanStats.
type scanCounters struct {
	clean, infected, errors, oversize    atomic.Uint64
	unscannedFailOpen, unscannedOversize atomic.Uint64
}

// ScanStats are the scan counters since start, for /metrics.
type ScanStats struct {
	// Scans by result (Scan.Result).
	Clean, Infected, Errors, Oversize uint64
	// Messages let through without a scan: the scanner failed and
	// FailOpen is set, or their declared size was over MaxBytes.
	UnscannedFailOpen, UnscannedOversize uint64
}

// ScanStats returns a snapshot of the scan counters.
func (s *Server) ScanStats() ScanStats {
	c := &s.scans
	return ScanStats{
		Clean: c.clean.Load(), Infected: c.infected.Load(), Errors: c.errors.Load(), Oversize: c.oversize.Load(),
		UnscannedFailOpen: c.unscannedFailOpen.Load(), UnscannedOversize: c.unscannedOversize.Load(),
	}
}
