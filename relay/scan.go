package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// scanRefusal is what a scanReader's Read returns instead of the end of
// the body when the message must not be queued: the queue, which commits
// only once it has read the body to its end, then commits nothing.
type scanRefusal struct {
	reply     *smtp.SMTPError
	signature string // infected
	cause     error  // scanner failure
}

func (r *scanRefusal) Error() string { return "relay: scan: " + r.reply.Message }
func (r *scanRefusal) Unwrap() error { return r.reply }

// scanReader tees the message, as the queue reads it, to a scan stream,
// and turns the body's end into the scanner's verdict: io.EOF when clean,
// a *scanRefusal when infected, too big, or (unless FailOpen) when the
// scanner failed. Nothing is held beyond the read in progress.
//
// 250 means durable, and nothing is queued for an infected message: both
// hold because every queue backend commits (spool rename or journal
// record, SQS send after the S3 PUT) only after the body reader returned
// io.EOF, and fails, keeping nothing, on any other error — the contract
// abortGuard relies on too. The verdict comes before that io.EOF, so an
// infected message is never committed and there is nothing to remove.
type scanReader struct {
	r   io.Reader
	o   *ScanOptions
	srv *Server
	log *slog.Logger

	st ScanStream // nil: not scanning (failed open, or past MaxBytes as declared)
	n  int64
	// overOK: the message declared a size over MaxBytes and such messages
	// are accepted: scanned until it goes past MaxBytes (over), then
	// accepted unscanned. A scanner failure before that is held in
	// pending, and applies if the message ends within MaxBytes.
	overOK, over bool
	pending      error
	eof          bool
	err          error // sticky: a refusal, or the final io.EOF
	done         bool  // Observe called
	// refusal is the reason the message was not queued, if scanning was.
	refusal *scanRefusal
}

// newScanReader starts the scan of one message (ctx bounds the connect).
// A scanner that cannot be reached gives a refusal at the first Read, or
// with FailOpen a reader that scans nothing.
func (s *Server) newScanReader(ctx context.Context, o *ScanOptions, r io.Reader, log *slog.Logger, overOK bool) *scanReader {
	sr := &scanReader{r: r, o: o, srv: s, log: log, overOK: overOK}
	st, err := o.Scanner.Begin(ctx)
	if err != nil {
		sr.failed(err, 0)
		return sr
	}
	sr.st = st
	return sr
}

func (sr *scanReader) Read(p []byte) (int, error) {
	if sr.err != nil {
		return 0, sr.err
	}
	if sr.eof {
		sr.err = sr.finish()
		return 0, sr.err
	}
	n, err := sr.r.Read(p)
	if n > 0 && sr.overOK && !sr.over {
		sr.n += int64(n)
		if sr.o.MaxBytes > 0 && sr.n > sr.o.MaxBytes {
			sr.unscannedOver()
		}
	}
	if n > 0 && sr.st != nil {
		if !sr.overOK {
			sr.n += int64(n)
		}
		if sr.o.MaxBytes > 0 && sr.n > sr.o.MaxBytes {
			sr.oversize()
			return 0, sr.err
		}
		if _, werr := sr.st.Write(p[:n]); werr != nil {
			if sr.failed(werr, 0) {
				return 0, sr.err
			}
		}
	}
	if err == io.EOF {
		sr.eof = true
		if n > 0 {
			return n, nil
		}
		sr.err = sr.finish()
		return 0, sr.err
	}
	return n, err
}

// finish gets the verdict at the end of the body.
func (sr *scanReader) finish() error {
	if sr.st == nil {
		if err := sr.pending; err != nil && !sr.over {
			// Declared oversize, failed within MaxBytes.
			sr.pending, sr.overOK = nil, false
			if sr.failed(err, 0) {
				return sr.err
			}
		}
		return io.EOF // failed open earlier, or past MaxBytes as declared
	}
	start := time.Now()
	v, err := sr.st.Finish()
	sr.st.Close()
	d := time.Since(start)
	switch {
	case err != nil:
		if sr.failed(err, d) {
			return sr.err
		}
		return io.EOF
	case v.Infected:
		sr.observe(ScanInfected, d)
		sr.refuse(&scanRefusal{reply: errInfected(v.Signature), signature: v.Signature})
		return sr.err
	}
	sr.observe(ScanClean, d)
	return io.EOF
}

// failed handles a scanner failure: it reports whether the message is
// refused (sr.err set), or accepted unscanned (FailOpen, with a WARN).
// clamd's own size limit is a refusal whatever FailOpen says.
func (sr *scanReader) failed(err error, d time.Duration) bool {
	if sr.st != nil {
		sr.st.Close()
		sr.st = nil
	}
	if sr.overOK && !sr.eof && !errors.Is(err, ErrClamdSizeLimit) {
		sr.pending = err // decided at the end: past MaxBytes, it does not matter
		return false
	}
	if errors.Is(err, ErrClamdSizeLimit) {
		sr.log.Error("clamd refused the stream at its StreamMaxLength, below the configured scan limit: set the scan limit to clamd's StreamMaxLength", "bytes", sr.n, "max_bytes", sr.o.MaxBytes)
		sr.observe(ScanOversize, d)
		sr.refuse(&scanRefusal{reply: errScanTooBig, cause: err})
		return true
	}
	sr.observe(ScanError, d)
	if errors.Is(err, ErrClamdReadTimeout) {
		// The client paused past clamd's ReadTimeout: FailOpen is for
		// scanner outages, and a client must not choose to go unscanned.
		sr.log.Warn("clamd timed out waiting for the message (the client paused longer than clamd's ReadTimeout, which should be at least the idle timeout); refused with 451 4.7.1", "err", err)
		sr.refuse(&scanRefusal{reply: errScanTempFail, cause: err})
		return true
	}
	if sr.o.FailOpen {
		sr.srv.scans.unscannedFailOpen.Add(1)
		sr.log.Warn("virus scanner failed; message accepted unscanned (fail open)", "err", err)
		return false
	}
	sr.log.Error("virus scanner failed; message refused with 451 4.7.1 (fail closed)", "err", err)
	sr.refuse(&scanRefusal{reply: errScanTempFail, cause: err})
	return true
}

// unscannedOver ends the scan of a message that declared a size over
// MaxBytes, when it goes past it: accepted unscanned (AcceptOversize).
func (sr *scanReader) unscannedOver() {
	sr.over, sr.pending = true, nil
	if sr.st != nil {
		sr.st.Close()
		sr.st = nil
	}
	sr.srv.scans.unscannedOversize.Add(1)
	sr.log.Warn("message not scanned: larger than the virus scanner's limit, as its declared size said", "max_bytes", sr.o.MaxBytes)
}

func (sr *scanReader) oversize() {
	sr.st.Close()
	sr.st = nil
	sr.observe(ScanOversize, 0)
	sr.refuse(&scanRefusal{reply: errScanTooBig})
}

func (sr *scanReader) refuse(r *scanRefusal) {
	sr.refusal = r
	sr.err = r
}

// close ends a scan that the body's end did not (the client's data or the
// queue failed first).
func (sr *scanReader) close() {
	if sr.st != nil {
		sr.st.Close()
		sr.st = nil
	}
}

func (sr *scanReader) observe(result string, d time.Duration) {
	if sr.done {
		return
	}
	sr.done = true
	c := &sr.srv.scans
	switch result {
	case ScanClean:
		c.clean.Add(1)
	case ScanInfected:
		c.infected.Add(1)
	case ScanOversize:
		c.oversize.Add(1)
	default:
		c.errors.Add(1)
	}
	if sr.o.Observe != nil {
		sr.o.Observe(Scan{Result: result, Duration: d})
	}
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
