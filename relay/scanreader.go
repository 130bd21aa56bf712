package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/emersion/go-smtp"
)

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
