package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// DefaultMaxReturnBytes is the default ReporterOptions.MaxReturnBytes:
// a report returns the whole original message (RET=FULL) only up to this
// size, and otherwise its header section alone. 256 KiB keeps reports small
// enough for any mailbox while returning typical text mail whole.
const DefaultMaxReturnBytes = 256 << 10

// ReporterOptions configures a Reporter.
type ReporterOptions struct {
	// Hostname names this relay: Reporting-MTA: dns; <Hostname>, and the
	// right-hand side of report Message-IDs. Required.
	Hostname string
	// From is the address reports come from; empty
	// means "MAILER-DAEMON@" + Hostname.
	From string
	// Store is the dedicated bounce store every report is written to.
	// Required.
	Store bounce.Store
	// Queue is where reports are queued back to the original sender; nil
	// means reports are only stored.
	Queue queue.Queue
	// ToSender enables queueing reports to the sender (the zero value
	// means "store only").
	ToSender bool
	// MaxReturnBytes bounds the original message returned with RET=FULL;
	// a larger message is returned as its header section alone, and the
	// header section itself is cut at this size. Zero or less means
	// DefaultMaxReturnBytes. At most this much of the original is held in
	// memory.
	MaxReturnBytes int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per report; nil discards.
	Logger *slog.Logger
}

// Reporter builds delivery status notifications (RFC 3464), writes each to
// the bounce store once, and queues it back to the sender with the null
// reverse-path.
type Reporter struct {
	o ReporterOptions
}

// NewReporter checks the options and returns a Reporter.
func NewReporter(o ReporterOptions) (*Reporter, error) {
	if o.Hostname == "" || strings.ContainsFunc(o.Hostname, func(r rune) bool { return r <= ' ' || r == '@' || r == '>' || r == '<' }) {
		return nil, fmt.Errorf("outbound: reporter: invalid hostname %q", o.Hostname)
	}
	if o.Store == nil {
		return nil, errors.New("outbound: reporter: no bounce store")
	}
	if o.From == "" {
		o.From = "MAILER-DAEMON@" + o.Hostname
	}
	if strings.ContainsFunc(o.From, func(r rune) bool { return r <= ' ' || r == '<' || r == '>' }) || !strings.Contains(o.From, "@") {
		return nil, fmt.Errorf("outbound: reporter: invalid bounce From address %q", o.From)
	}
	if o.MaxReturnBytes <= 0 {
		o.MaxReturnBytes = DefaultMaxReturnBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{o: o}, nil
}

// notifyKeyword maps a report kind to the NOTIFY keyword that asks for it
// (RFC 3461 §4.1): "relayed" and "delivered" both answer NOTIFY=SUCCESS.
func notifyKeyword(k dsn.Action) (string, bool) {
	switch k {
	case dsn.Failed:
		return queue.NotifyFailure, true
	case dsn.Delayed:
		return queue.NotifyDelay, true
	case dsn.Relayed, dsn.Delivered:
		return queue.NotifySuccess, true
	}
	return "", false
}

// Report produces the report that req asks for. Recipients whose NOTIFY does
// not ask for this kind of report are left out; when none is left (NOTIFY=
// NEVER, say) Report does nothing and returns nil.
//
// The report is stored under a key derived from the queue ID, the kind and
// the recipients, so calling Report again for the same request (after a
// crash before the caller recorded the report) stores nothing new, and the
// copy queued to the sender uses the key as its queue ID, which the queue
// treats idempotently. A message whose own sender is <> (or that is itself
// a report) gets its report stored, never queued: bounces are not bounced.
//
// Report does not change the envelope; recording that the recipients were
// reported (Recipient.Reported, DelayReported) is the caller's job, after
// Report returned nil.
func (r *Reporter) Report(ctx context.Context, req ReportRequest) error {
	if req.Message == nil || req.Message.Envelope == nil {
		return errors.New("outbound: report: no message")
	}
	env := req.Message.Envelope
	keyword, ok := notifyKeyword(req.Kind)
	if !ok {
		return fmt.Errorf("outbound: report: unknown kind %q", req.Kind)
	}
	idx := slices.Clone(req.Recipients)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	var wanted []int
	for _, i := range idx {
		if i < 0 || i >= len(env.Recipients) {
			return fmt.Errorf("outbound: report: recipient index %d out of range", i)
		}
		if env.Recipients[i].Wants(keyword) {
			wanted = append(wanted, i)
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	key, err := reportKey(env.ID, req.Kind, wanted)
	if err != nil {
		return err
	}

	msg, d, err := r.build(ctx, req, key, wanted)
	if err != nil {
		return fmt.Errorf("outbound: report %s: %w", key, err)
	}
	if err := r.o.Store.Put(ctx, key, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("outbound: report %s: storing in %s: %w", key, r.o.Store, err)
	}

	queued := false
	if r.o.ToSender && r.o.Queue != nil && env.From != "" && !env.Bounce {
		benv := &queue.Envelope{
			ID:         key,
			From:       "",
			Bounce:     true,
			Recipients: []queue.Recipient{{Addr: env.From, Status: queue.StatusPending}},
			SMTPUTF8:   env.SMTPUTF8,
			Body8Bit:   !dsn.IsASCII(msg),
			MessageID:  d.MessageID,
			Arrival:    d.Date,
			Size:       int64(len(msg)),
		}
		if _, err := r.o.Queue.Enqueue(ctx, benv, bytes.NewReader(msg)); err != nil {
			return fmt.Errorf("outbound: report %s: queueing to sender: %w", key, err)
		}
		queued = true
	}
	r.o.Logger.LogAttrs(ctx, slog.LevelInfo, "delivery status notification",
		slog.String("queue_id", env.ID),
		slog.String("kind", string(req.Kind)),
		slog.Any("recipients", finalRecipients(d)),
		slog.String("key", key),
		slog.String("store", r.o.Store.String()),
		slog.Bool("to_sender", queued),
	)
	return nil
}

// reportKey is the deterministic name of one report: "<id>-<kind>-<hash>",
// the hash covering the ID, the kind and the sorted recipient indexes. It
// satisfies queue.ValidID (the ID part is shortened when needed).
func reportKey(id string, kind dsn.Action, idx []int) (string, error) {
	if !queue.ValidID(id) {
		return "", fmt.Errorf("outbound: report: invalid queue ID %q", id)
	}
	h := sha256.New()
	h.Write([]byte(id + "\x00" + string(kind)))
	for _, i := range idx {
		h.Write([]byte("\x00" + strconv.Itoa(i)))
	}
	suffix := "-" + string(kind) + "-" + hex.EncodeToString(h.Sum(nil)[:5])
	if len(id)+len(suffix) > 64 {
		id = id[:64-len(suffix)]
	}
	return id + suffix, nil
}

// subjects are the report Subjects, one per kind.
var subjects = map[dsn.Action]string{
	dsn.Failed:    "Undelivered Mail Returned to Sender",
	dsn.Delayed:   "Delayed Mail (still being retried)",
	dsn.Delivered: "Successful Mail Delivery Report",
	dsn.Relayed:   "Relayed Mail Report",
}

// build assembles the DSN model for req and composes it.
func (r *Reporter) build(ctx context.Context, req ReportRequest, key string, idx []int) ([]byte, *dsn.Report, error) {
	env := req.Message.Envelope
	now := r.o.Now()
	d := &dsn.Report{
		From:         r.o.From,
		To:           env.From,
		Subject:      subjects[req.Kind],
		Date:         now,
		MessageID:    key + "@" + r.o.Hostname,
		InReplyTo:    dsn.CleanMessageID(env.MessageID),
		ReportingMTA: r.o.Hostname,
		EnvelopeID:   env.EnvID,
		ArrivalDate:  env.Arrival,
		SMTPUTF8:     env.SMTPUTF8,
	}
	for _, i := range idx {
		rc := &env.Recipients[i]
		// The worker records replies bounded and valid; an envelope written
		// before it did (or by anything else) is made so here too, so that
		// no stored reply can upset a report.
		reply := recordable(rc.Reply)
		dr := dsn.Recipient{
			OriginalRecipient: rc.ORCPT,
			FinalRecipient:    rc.Addr,
			Action:            req.Kind,
			Status:            statusCode(req.Kind, reply),
			LastAttemptDate:   rc.LastAttempt,
		}
		// Remote-MTA and Diagnostic-Code describe a reply a remote server
		// gave (RFC 3464 §2.3.5, §2.3.6); a reply edgerelay synthesized for a
		// local decision (expiry, no such domain) has no Remote-MTA and is
		// shown in the text only.
		if rc.RemoteMTA != "" {
			dr.RemoteMTA, _, _ = strings.Cut(strings.TrimSpace(recordableRemote(rc.RemoteMTA)), " ")
			if reply != nil && reply.Code != 0 {
				dr.DiagnosticCode = reply.String()
			}
		}
		if req.Kind == dsn.Delayed {
			dr.WillRetryUntil = req.WillRetryUntil
		}
		d.Recipients = append(d.Recipients, dr)
	}

	// The returned content: RET=FULL asks for the whole message in a
	// "failed" report (RFC 3461 §4.3); every other report, and a failed one
	// without RET (the default is the MTA's choice), returns the header
	// section.
	full := strings.EqualFold(env.RET, "FULL") && req.Kind == dsn.Failed
	var orig dsn.Returned
	if req.Body != nil {
		rc, err := req.Body(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the original message: %w", err)
		}
		orig, err = dsn.ReadReturned(rc, full, r.o.MaxReturnBytes)
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("reading the original message: %w", err)
		}
	}
	d.Return, d.Original = orig.Return, orig.Content
	if d.InReplyTo == "" {
		d.InReplyTo = orig.MessageID
	}
	d.Text = humanText(r.o.Hostname, req, env, idx, orig, r.o.MaxReturnBytes)

	var b bytes.Buffer
	if err := d.Compose(&b); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), d, nil
}

// statusCode is the Status field: the remote's enhanced code when it gave
// a valid one, or one derived from the basic code's class (RFC 3463 §3.1:
// X.0.0 "other undefined status"), or from the kind.
func statusCode(kind dsn.Action, rep *queue.Reply) string {
	if rep != nil && validEnhanced(rep.Enhanced) {
		return rep.Enhanced
	}
	if rep != nil {
		switch rep.Code / 100 {
		case 2, 4, 5:
			return strconv.Itoa(rep.Code/100) + ".0.0"
		}
	}
	switch kind {
	case dsn.Failed:
		return "5.0.0"
	case dsn.Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

// validEnhanced reports whether s is an RFC 3463 status code:
// class "." subject "." detail, class 2, 4 or 5, subject and detail 1 to 3
// digits.
func validEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func finalRecipients(d *dsn.Report) []string {
	out := make([]string, len(d.Recipients))
	for i, r := range d.Recipients {
		out[i] = r.FinalRecipient
	}
	return out
}
