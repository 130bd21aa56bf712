package sqs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/edgerelay/edgerelay/internal/s3util"
	"github.com/edgerelay/edgerelay/queue"
)

// The operator's commands on this backend (queue.Admin; edgerelay queue …).
// SQS can neither list nor change the messages it holds, so:
//   - List and Show read the S3 side: the body objects say which messages
//     are queued, their operator's copies (view.go) what state they were
//     in at their last enqueue, reschedule or re-arm (AsOf), and their
//     marks (mark.go) what the operator asked for. Leased is never set:
//     SQS does not say whether a message is in flight.
//   - Hold, Release, Retry, Bounce and Delete write the mark and return
//     immediate=false: the next receive of the message acts on it. Release,
//     Retry, Bounce and Delete also make a message that a receive re-armed
//     for a delay over 15 min visible at once, with the receipt handle that
//     receive left in the copy; a message waiting on an SQS delay (up to
//     15 min: DelaySeconds cannot be shortened) is acted on when it ends.
//   - An ID with no body object is queue.ErrNotFound.
//   - A message set aside in quarantine (poison.go) is refused by the
//     marking commands: no receive would read the mark. One the redrive
//     moved to the dead-letter queue cannot be told apart from S3: its
//     mark waits until it is moved back.

var _ queue.Admin = (*Queue)(nil)

// MaxListed bounds List: past it, List returns the first MaxListed
// messages (by key) and ErrListTruncated.
const MaxListed = 10000

// ErrListTruncated is returned by List with the messages it did read when
// the queue holds more than MaxListed.
var ErrListTruncated = fmt.Errorf("sqs queue: more than %d messages; the list is cut short", MaxListed)

// adminParallel bounds the S3 reads List makes at once.
const adminParallel = 16

// listed is what one listing of the prefix says about a message.
type listed struct {
	id       string
	size     int64
	modified time.Time
	view     bool
	mark     bool
}

// listQueued lists the messages under the prefix (one ListObjectsV2 page
// per 1000 objects), at most MaxListed.
func (q *Queue) listQueued(ctx context.Context) ([]*listed, error) {
	var out []*listed
	byID := map[string]*listed{}
	var views, marks []string
	p := s3.NewListObjectsV2Paginator(q.o.S3, &s3.ListObjectsV2Input{
		Bucket: aws.String(q.o.Bucket), Prefix: aws.String(q.o.Prefix), Delimiter: aws.String("/"),
	})
	truncated := false
	for p.HasMorePages() && !truncated {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqs queue: list s3://%s/%s: %w", q.o.Bucket, q.o.Prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			rest := strings.TrimPrefix(key, q.o.Prefix)
			switch {
			case strings.HasSuffix(rest, ".view.json"):
				views = append(views, strings.TrimSuffix(rest, ".view.json"))
			case strings.HasSuffix(rest, ".op.json"):
				marks = append(marks, strings.TrimSuffix(rest, ".op.json"))
			default:
				id := q.idOfKey(key)
				if id == "" {
					continue
				}
				if len(out) == MaxListed {
					truncated = true
					continue
				}
				l := &listed{id: id, size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified)}
				out = append(out, l)
				byID[id] = l
			}
		}
	}
	for _, id := range views {
		if l := byID[id]; l != nil {
			l.view = true
		}
	}
	for _, id := range marks {
		if l := byID[id]; l != nil {
			l.mark = true
		}
	}
	if truncated {
		return out, ErrListTruncated
	}
	return out, nil
}

// entry reads what S3 holds about l into an Entry. A copy or mark that
// cannot be decoded spoils only this entry, logged: without the copy it
// shows what the body object says; with a bad mark it shows held, as the
// worker keeps such a message from delivery (accept.go) until a command
// rewrites the mark. An error reading S3 is returned.
func (q *Queue) entry(ctx context.Context, l *listed) (*queue.Entry, error) {
	e := &queue.Entry{Envelope: queue.Envelope{ID: l.id, Size: l.size, Arrival: l.modified}}
	if l.view {
		v, err := q.readView(ctx, l.id)
		switch {
		case errors.Is(err, errBadView):
			q.log.Warn("sqs queue: the operator's copy is unreadable; shown from the body object alone", "id", l.id, "err", err)
		case err != nil:
			return nil, err
		case v != nil:
			e.Envelope, e.AsOf = *v.Envelope, v.AsOf
		}
	}
	var mk *markObject
	if l.mark {
		var err error
		mk, err = q.readMark(ctx, l.id)
		switch {
		case errors.Is(err, errBadMark):
			q.log.Warn("sqs queue: the operator's mark is unreadable; shown held (not delivered until a command rewrites it)", "id", l.id, "err", err)
			mk = &markObject{Hold: true}
		case err != nil:
			return nil, err
		}
	}
	mergeMark(&e.Envelope, mk, time.Time{})
	return e, nil
}

// List returns every queued message with the state of its operator's copy
// and mark, in key order (IDs sort by arrival); see ErrListTruncated.
func (q *Queue) List(ctx context.Context) ([]queue.Entry, error) {
	ls, lerr := q.listQueued(ctx)
	if ls == nil && lerr != nil {
		return nil, lerr
	}
	entries := make([]queue.Entry, len(ls))
	errs := make([]error, len(ls))
	sem := make(chan struct{}, adminParallel)
	var wg sync.WaitGroup
	for i, l := range ls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			e, err := q.entry(ctx, l)
			if err != nil {
				errs[i] = err
				return
			}
			entries[i] = *e
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sqs queue: list: %w", err)
	}
	return entries, lerr
}

// Show returns one message's entry.
func (q *Queue) Show(ctx context.Context, id string) (*queue.Entry, error) {
	if !queue.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	head, err := q.o.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(q.bodyKey(id))})
	if err != nil {
		if s3util.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
		}
		return nil, fmt.Errorf("sqs queue: show %s: %w", id, err)
	}
	e, err := q.entry(ctx, &listed{id: id, size: aws.ToInt64(head.ContentLength), modified: aws.ToTime(head.LastModified), view: true, mark: true})
	if err != nil {
		return nil, fmt.Errorf("sqs queue: show %s: %w", id, err)
	}
	return e, nil
}

// OpenBody opens the stored message.
func (q *Queue) OpenBody(ctx context.Context, id string) (io.ReadCloser, error) {
	if !queue.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	rc, err := q.openBody(ctx, q.bodyKey(id))
	if err != nil && s3util.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	return rc, err
}

// errQuarantined: the message was set aside in quarantine (poison.go).
var errQuarantined = errors.New("set aside in quarantine")

// mark changes message id's mark with change and, when nudge is set, ends
// a re-armed wait so that the next receive acts on it.
func (q *Queue) mark(ctx context.Context, id string, nudge bool, change func(*markObject)) (bool, error) {
	if !queue.ValidID(id) {
		return false, fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	exists, err := q.bodyExists(ctx, q.bodyKey(id))
	if err != nil {
		return false, fmt.Errorf("sqs queue: %s: %w", id, err)
	}
	if !exists {
		return false, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	// A message set aside (poison.go) is no longer in SQS: no receive
	// would ever read the mark.
	if set, err := q.bodyExists(ctx, q.quarantineKey(id)); err != nil || set {
		if err == nil {
			err = fmt.Errorf("%w at s3://%s/%s after deliveries that ended without a result; no worker receives it, so a mark would never be acted on (its body stays at s3://%s/%s)",
				errQuarantined, q.o.Bucket, q.quarantineKey(id), q.o.Bucket, q.bodyKey(id))
		}
		return false, fmt.Errorf("sqs queue: %s: %w", id, err)
	}
	mk, err := q.readMark(ctx, id)
	if err != nil {
		// An unreadable mark is replaced: the operator says what it is now.
		q.log.Warn("sqs queue: unreadable operator mark replaced", "id", id, "err", err)
	}
	if mk == nil {
		mk = &markObject{}
	}
	change(mk)
	if err := q.writeMark(ctx, id, mk); err != nil {
		return false, fmt.Errorf("sqs queue: %s: %w", id, err)
	}
	if nudge {
		q.nudge(ctx, id)
	}
	q.log.Info("sqs queue: operator mark written; the next receive acts on it", "id", id,
		"hold", mk.Hold, "operator", mk.Operator, "retry_at", mk.RetryAt)
	return false, nil
}

// nudge makes a message that a receive re-armed visible now, with the
// receipt handle that receive wrote into the copy. A stale handle (the
// message was received since) is no error: that receive read the mark.
// A handle that worked is cleared from the copy at once: the receive it
// makes possible hands the message to a worker under a new handle, and a
// second command must not make that delivery's message visible to another
// worker with the old one, whatever SQS does with an old handle.
func (q *Queue) nudge(ctx context.Context, id string) {
	v, err := q.readView(ctx, id)
	if err != nil || v == nil || v.Receipt == "" {
		return
	}
	_, err = q.o.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(v.Receipt), VisibilityTimeout: 0,
	})
	if err != nil {
		q.log.Debug("sqs queue: could not end the re-armed wait (received since?)", "id", id, "err", err)
	}
	q.writeView(ctx, v.Envelope, "")
}

// Retry marks the message to be tried at its next receive, now if a
// receive re-armed it; a held message is released.
func (q *Queue) Retry(ctx context.Context, id string) (bool, error) {
	now := q.o.Now()
	return q.mark(ctx, id, true, func(mk *markObject) { mk.Hold, mk.RetryAt = false, now })
}

// RetryAll marks every message that is not on hold to be tried now
// (adminParallel at a time) and returns how many it marked.
func (q *Queue) RetryAll(ctx context.Context) (int, error) {
	ls, lerr := q.listQueued(ctx)
	now := q.o.Now()
	var (
		mu   sync.Mutex
		n    int
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, adminParallel)
	for _, l := range ls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if l.mark {
				// Held, or a mark that cannot be read (it may have been a
				// hold; List shows it held): only release or retry of the
				// message itself rewrites it.
				if mk, err := q.readMark(ctx, l.id); errors.Is(err, errBadMark) || err == nil && mk != nil && mk.Hold {
					return
				}
			}
			_, err := q.mark(ctx, l.id, true, func(mk *markObject) { mk.RetryAt = now })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				n++
			case errors.Is(err, errQuarantined):
				q.log.Warn("sqs queue: retry --all passes over a message set aside in quarantine", "id", l.id)
			case !errors.Is(err, queue.ErrNotFound): // not completed since the listing
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return n, err
	}
	return n, lerr
}

// Hold marks the message held: the next receive hands it to the worker
// with Hold set, which keeps it without delivering.
func (q *Queue) Hold(ctx context.Context, id string) (bool, error) {
	return q.mark(ctx, id, false, func(mk *markObject) { mk.Hold = true })
}

// Release removes the hold; the message is tried at its next receive.
func (q *Queue) Release(ctx context.Context, id string) (bool, error) {
	now := q.o.Now()
	return q.mark(ctx, id, true, func(mk *markObject) { mk.Hold, mk.RetryAt = false, now })
}

// Bounce marks the message for the worker that receives it next to fail
// its pending recipients and report them (queue.OperatorBounce).
func (q *Queue) Bounce(ctx context.Context, id string) (bool, error) {
	now := q.o.Now()
	return q.mark(ctx, id, true, func(mk *markObject) { mk.Hold, mk.Operator, mk.RetryAt = false, queue.OperatorBounce, now })
}

// Delete marks the message for the worker that receives it next to remove
// it without a report (queue.OperatorDelete).
func (q *Queue) Delete(ctx context.Context, id string) (bool, error) {
	now := q.o.Now()
	return q.mark(ctx, id, true, func(mk *markObject) { mk.Hold, mk.Operator, mk.RetryAt = false, queue.OperatorDelete, now })
}
