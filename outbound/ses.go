package outbound

import (
	"context"
	"io"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/edgerelay/edgerelay/queue"
)

// The Amazon SES API gateway (ses://REGION): one SendEmail call with raw
// content (the queued message byte for byte) per group of at most
// sesMaxRecipients recipients, authorised by the SDK's default credential
// chain (the container's IAM role; never a password).
//
//   - Destination.ToAddresses is the attempt's envelope recipients, never
//     the header's: with raw content SES sends to the Destination's
//     addresses when one is given and takes them from the To/Cc/Bcc header
//     fields only without one, and the message's header is not rewritten.
//     The API reference does not say so in as many words (RawMessage,
//     Destination); the emulator behaves so, and so do the SES API
//     transports that send Bcc this way (Symfony Mailer's SES v2 transport
//     passes the envelope recipients as ToAddresses). So a Bcc recipient
//     (in the envelope only) gets the message, and a header address that is
//     not a recipient of this attempt (delivered before, or refused) does
//     not get it again.
//   - The envelope sender is FromEmailAddress and
//     FeedbackForwardingEmailAddress: SES sends with a MAIL FROM of its own
//     (amazonses.com, or the identity's custom MAIL FROM domain), so the
//     reverse-path cannot be passed on as it is; its role (RFC 5321 §4.5.5:
//     where notifications go) is what FeedbackForwardingEmailAddress does,
//     and it takes precedence over a Return-Path in the raw message. Both
//     must be verified identities (a domain identity covers its
//     addresses); the relay's sender alignment makes the envelope sender
//     one of the user's addresses. The null reverse-path (our own reports)
//     leaves both unset, and SES takes the message's From header.
//   - SES accepts or refuses a call as a whole, so every recipient of a
//     group gets the same result. SES offers no DSN (RFC 3461) to us: an
//     accepted recipient is StatusRelayed, and edgerelay itself reports
//     "relayed" to a NOTIFY=SUCCESS sender (RFC 3461 §6.2.2), as for an
//     SMTP hop without DSN (transact.go).
//   - What SES refuses for good fails the group with the SES error code
//     and message in the reply (ses_errors.go); everything else (throttling,
//     quotas, 5xx, network, credentials, permissions) leaves it pending and
//     reports the hop down when no group of the call got through.

// sesMaxMessage is the largest raw message sent to SES. The SES quotas
// (https://docs.aws.amazon.com/ses/latest/dg/quotas.html, "Message
// quotas"): "Using the SES v2 API or SMTP - Maximum message size (including
// attachments): 40 MB per message (after base64 encoding)", not
// adjustable. The request carries the message base64-encoded (4 bytes per
// 3, RFC 4648 §4), so the raw limit is 3/4 of 40 MiB: 30 MiB. (A MB of the
// v1 quota was 10485760 bytes; reading this one as 40 000 000 would refuse
// messages SES takes, and SES refusing one we did send still fails it for
// good as MessageRejected.)
const sesMaxMessage = 40 << 20 / 4 * 3

// sesMaxRecipients is SES's limit of recipients per message (the same
// page, "Sender and recipient quotas": 50, "any To, CC, or BCC address",
// not adjustable): more recipients are sent in several calls.
const sesMaxRecipients = 50

// sesCallTimeout bounds one SendEmail call, the SDK's own retries included
// (ses_wire.go: three attempts, backoff at most 2 s): a 30 MiB message at
// 1 MB/s takes about 40 s per attempt.
const sesCallTimeout = 3 * time.Minute

// sesLargeMessage and sesLargeSlots bound the memory of SES calls: the
// API takes the message whole (the SDK needs it as []byte and holds its
// base64 form in the request too), unlike SMTP, which streams the body.
// A message above sesLargeMessage waits for one of sesLargeSlots per hop,
// held until its calls are over, so at most that many large messages are
// in memory at once however many deliveries are in flight. Measured: a
// 30 MiB message costs its 30 MiB and 80 MiB more allocated by the SDK's
// call (its base64 JSON body), about 110 MiB a slot; a smaller one about
// 3.7 times its size, each delivery in flight.
const (
	sesLargeMessage = 4 << 20
	sesLargeSlots   = 2
)

// sesHop delivers through the Amazon SES v2 API (ses://REGION).
type sesHop struct {
	w       *Worker
	cfg     GatewayConfig
	remote  string // RemoteMTA: "email.eu-west-1.amazonaws.com (SES)"
	timeout time.Duration
	large   chan struct{}
}

func (w *Worker) newSESHop(cfg GatewayConfig) hop {
	return &sesHop{w: w, cfg: cfg, remote: sesRemote(cfg), timeout: sesCallTimeout,
		large: make(chan struct{}, sesLargeSlots)}
}

// sesRemote is the RemoteMTA text of an SES gateway: the API endpoint's
// host (the client's configured endpoint, AWS_ENDPOINT_URL_SESV2, when
// there is one) and "(SES)". Reports take its first word as the
// Remote-MTA host (reporter.go).
func sesRemote(cfg GatewayConfig) string {
	region := cfg.SESRegion
	if c, ok := cfg.SES.(interface{ Options() sesv2.Options }); ok {
		o := c.Options()
		if region == "" {
			region = o.Region
		}
		if o.BaseEndpoint != nil {
			if u, err := url.Parse(*o.BaseEndpoint); err == nil && u.Host != "" {
				return u.Host + " (SES)"
			}
		}
	}
	if region == "" {
		return "email.amazonaws.com (SES)"
	}
	return "email." + region + ".amazonaws.com (SES)"
}

func (h *sesHop) name() string { return h.cfg.URL }

// deliver sends m to the recipients idx, in groups of at most
// sesMaxRecipients, one SendEmail call each. The hop is down only when a
// call failed temporarily before any call of this attempt was answered:
// the gateway list then tries the next gateway with every recipient, so
// once SES took the message for some recipients (or refused it for good),
// a later group's temporary failure leaves that group and the rest pending
// (retried on the schedule) without failing over, and nobody gets the
// message twice.
func (h *sesHop) deliver(ctx context.Context, m *queue.Message, idx []int) (map[int]result, bool) {
	env := m.Envelope
	res := make(map[int]result, len(idx))
	all := func(v verdict, which []int) {
		for _, i := range which {
			res[i] = resultOf(v, h.remote)
		}
	}
	if v := h.unfit(env); v != nil {
		all(*v, idx)
		return res, false
	}
	release, v := h.slot(ctx, env)
	if v != nil {
		all(*v, idx)
		return res, false
	}
	defer release() // the calls hold data and its base64 form
	data, v := h.body(ctx, m)
	if v != nil {
		all(*v, idx)
		return res, false
	}
	answered := false
	for n := 0; n < len(idx); n += sesMaxRecipients {
		group := idx[n:min(n+sesMaxRecipients, len(idx))]
		to := make([]string, 0, len(group))
		var sendTo []int
		for _, i := range group {
			// process has failed the addresses that cannot be written
			// already (unwritable); this is the same check, kept local.
			a, err := wirePath(env.Recipients[i].Addr)
			if err != nil {
				res[i] = resultOf(permanent(replyBadRecipient(err)), "")
				continue
			}
			to, sendTo = append(to, a), append(sendTo, i)
		}
		if len(sendTo) == 0 {
			continue
		}
		id, unanswered, err := h.send(ctx, env, to, data)
		if err != nil {
			v := sesVerdict(err)
			h.w.log.Warn("SES call failed", "id", env.ID, "gateway", h.name(),
				"temporary", v.Temporary, "may_have_sent", unanswered, "err", errString(err))
			if v.Temporary {
				// A request written whole whose connection was then
				// closed unanswered may have been sent (the API's reply
				// to the dot lost, RFC 5321 §6.1): not down, so that the
				// next gateway does not send it again in this attempt.
				// One left unanswered until the call's timeout is down:
				// an endpoint that hangs would otherwise hold every
				// delivery for sesCallTimeout, with no failover.
				all(v, idx[n:])
				lost := unanswered && !isTimeout(err)
				return res, !answered && !lost
			}
			all(v, sendTo)
			answered = true
			continue
		}
		answered = true
		h.w.log.Info("SES accepted the message", "id", env.ID, "gateway", h.name(),
			"ses_message_id", id, "rcpts", len(sendTo))
		rep := replySESAccepted(id)
		for _, i := range sendTo {
			res[i] = result{status: queue.StatusRelayed, reply: rep, remote: h.remote}
		}
	}
	return res, false
}

// unfit returns the verdict for a message that SES cannot take, decided
// before the body is read, or nil.
func (h *sesHop) unfit(env *queue.Envelope) *verdict {
	verdictOf := func(v verdict) *verdict { return &v }
	// SES does not support SMTPUTF8 (the SES v1 API reference, SendRawEmail,
	// Source: "Amazon SES does not support the SMTPUTF8 extension, as
	// described in RFC6531"): RFC 6531 §3.2 as for an SMTP hop without it.
	if env.SMTPUTF8 {
		return verdictOf(permanent(replyNeedsSMTPUTF8()))
	}
	if env.Size > sesMaxMessage {
		return verdictOf(permanent(replySESTooBig(env.Size)))
	}
	if _, err := wirePath(env.From); err != nil {
		return verdictOf(permanent(replyBadSender(err)))
	}
	return nil
}

// slot takes one of the large-message slots for a large message, to be
// released when its SendEmail calls are over (not when its body has been
// read: the calls hold it, and its base64 form, as long as they last).
func (h *sesHop) slot(ctx context.Context, env *queue.Envelope) (func(), *verdict) {
	if env.Size <= sesLargeMessage {
		return func() {}, nil
	}
	select {
	case h.large <- struct{}{}:
		return func() { <-h.large }, nil
	case <-ctx.Done():
		v := temporary(replySESBusy())
		return nil, &v
	}
}

// body reads the queued message whole (the API takes it in one request),
// at most sesMaxMessage bytes. Its release is the garbage collector's once
// the calls are over.
func (h *sesHop) body(ctx context.Context, m *queue.Message) ([]byte, *verdict) {
	env := m.Envelope
	verdictOf := func(v verdict) *verdict { return &v }
	rc, err := h.w.q.Body(ctx, m)
	if err != nil {
		h.w.log.Error("cannot open queued body", "id", env.ID, "err", err)
		return nil, verdictOf(temporary(replyBodyUnreadable()))
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, sesMaxMessage+1))
	if err != nil {
		h.w.log.Error("cannot read queued body", "id", env.ID, "err", err)
		return nil, verdictOf(temporary(replyBodyUnreadable()))
	}
	// Size is what the front end counted; the body is what goes out.
	if len(data) > sesMaxMessage {
		return nil, verdictOf(permanent(replySESTooBig(int64(len(data)))))
	}
	return data, nil
}

// send makes one SendEmail call and returns SES's message ID, and
// whether a request of the call (the SDK's retries included) was written
// whole without a response to it: SES may have sent that one.
func (h *sesHop) send(ctx context.Context, env *queue.Envelope, to []string, data []byte) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var wrote, answered atomic.Int32
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Add(1)
			}
		},
		GotFirstResponseByte: func() { answered.Add(1) },
	})
	in := &sesv2.SendEmailInput{
		Content:     &types.EmailContent{Raw: &types.RawMessage{Data: data}},
		Destination: &types.Destination{ToAddresses: to},
	}
	if env.From != "" {
		from, _ := wirePath(env.From) // checked by unfit
		in.FromEmailAddress = aws.String(from)
		in.FeedbackForwardingEmailAddress = aws.String(from)
	}
	if h.cfg.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(h.cfg.ConfigurationSet)
	}
	out, err := h.cfg.SES.SendEmail(ctx, in)
	if err != nil {
		return "", wrote.Load() > answered.Load(), err
	}
	if out == nil || out.MessageId == nil {
		return "", false, nil
	}
	return *out.MessageId, false, nil
}
