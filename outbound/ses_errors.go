package outbound

import (
	"errors"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// sesVerdict turns an error from SendEmail into a verdict, by the error's
// type (errors.As on the sesv2 error types, then smithy's APIError code
// and the HTTP status), never by its text. Only four types are final, each
// a refusal of this message that no later call changes; everything else,
// known or not, is temporary: the recipients stay pending, are retried on
// the schedule and expire after the queue lifetime, never bounced early.
// The reply carries the SES error code and message (one line, bounded).
//
// The enhanced codes are RFC 3463's: X.6.0 media, X.1.8 sender's system
// address, X.7.1 not authorised, X.5.2 syntax, X.3.2 system not accepting
// messages, X.3.5 system incorrectly configured, X.4.5 congestion, X.7.0
// security, X.3.0 mail system.
//
//	error                                 verdict        reply
//	MessageRejected                       permanent      554 5.6.0
//	MailFromDomainNotVerifiedException    permanent      550 5.1.8
//	AccountSuspendedException             permanent      554 5.7.1
//	BadRequestException                   permanent      554 5.5.2
//	SendingPausedException                temporary      451 4.3.2
//	NotFoundException                     temporary      451 4.3.5
//	TooManyRequestsException, LimitExceededException and the SDK's
//	  throttle codes (ThrottlingException: "Daily message quota exceeded",
//	  "Maximum sending rate exceeded"), HTTP 429    temporary      451 4.4.5
//	access codes (AccessDenied…), HTTP 401/403      temporary      451 4.7.0
//	InternalServiceErrorException, HTTP 5xx, any
//	  other API error                       temporary      451 4.3.0
//	network errors, timeouts                temporary      as networkReply
//	anything else (credentials not found…)  temporary      451 4.3.0
//
// Why each:
//   - MessageRejected: "the message can't be sent because it contains
//     invalid content" (the API reference): the same message is refused
//     again. (In the sandbox an unverified recipient is refused so too; that
//     is as final for the message as a 550 user unknown.)
//   - MailFromDomainNotVerifiedException: the sending domain's custom MAIL
//     FROM domain is not verified: every message from that sender is refused
//     until an operator acts, which a retry schedule of days does not wait
//     for; the sender learns at once, with SES's own words.
//   - AccountSuspendedException: "permanently restricted" (the API
//     reference).
//   - BadRequestException: the request made from this message (its
//     addresses, its size) is invalid, and the same message makes the same
//     request. The relay's own part of the request (the configuration set
//     name) is checked at start (ValidConfigurationSet).
//   - SendingPausedException: "currently paused", by AWS during a review or
//     by the operator (PutAccountSendingAttributes, a configuration set's
//     sending options): it is resumed, so the message waits.
//   - NotFoundException: for SendEmail, the configuration set (or an
//     identity ARN) does not exist: the relay's configuration, which an
//     operator fixes; the message is not at fault.
//   - Throttling and quotas: SES's sending rate and its daily quota
//     (rolling 24 h) both free up with time; LimitExceededException is
//     counted with them, as the SDK's retryer does.
//   - Access and credentials: a missing ses:SendRawEmail permission, an
//     expired role session, no credentials in the container: the relay's
//     configuration, never the message's fault.
func sesVerdict(err error) verdict {
	var (
		rejected  *types.MessageRejected
		mailFrom  *types.MailFromDomainNotVerifiedException
		suspended *types.AccountSuspendedException
		badReq    *types.BadRequestException
		paused    *types.SendingPausedException
		notFound  *types.NotFoundException
		tooMany   *types.TooManyRequestsException
		limit     *types.LimitExceededException
		apiErr    smithy.APIError
	)
	switch {
	case errors.As(err, &rejected):
		return permanent(sesReply(554, "5.6.0", "Amazon SES rejected the message", rejected))
	case errors.As(err, &mailFrom):
		return permanent(sesReply(550, "5.1.8", "Amazon SES refused the sender's MAIL FROM domain", mailFrom))
	case errors.As(err, &suspended):
		return permanent(sesReply(554, "5.7.1", "the Amazon SES account may not send", suspended))
	case errors.As(err, &badReq):
		return permanent(sesReply(554, "5.5.2", "Amazon SES refused the request for this message", badReq))
	case errors.As(err, &paused):
		return temporary(sesReply(451, "4.3.2", "Amazon SES sending is paused", paused))
	case errors.As(err, &notFound):
		return temporary(sesReply(451, "4.3.5", "Amazon SES configuration not found", notFound))
	case errors.As(err, &tooMany), errors.As(err, &limit), sesThrottled(err):
		return temporary(sesReply(451, "4.4.5", "Amazon SES is throttling", apiErrorOf(err)))
	case sesAccessDenied(err):
		return temporary(sesReply(451, "4.7.0", "Amazon SES refused the relay's credentials or permissions", apiErrorOf(err)))
	case errors.As(err, &apiErr):
		return temporary(sesReply(451, "4.3.0", "Amazon SES failed", apiErr))
	case httpStatus(err) >= 500:
		return temporary(reply(451, "4.3.0", sesClean("Amazon SES failed: "+err.Error())))
	}
	if r, ok := typedNetworkReply(err); ok {
		return temporary(r)
	}
	return temporary(reply(451, "4.3.0", sesClean("Amazon SES request failed: "+err.Error())))
}

// sesThrottled reports an API error whose code the SDK's retryer counts as
// throttling, or an HTTP 429 without a known code.
func sesThrottled(err error) bool {
	if e := apiErrorOf(err); e != nil {
		if _, ok := retry.DefaultThrottleErrorCodes[e.ErrorCode()]; ok {
			return true
		}
	}
	return httpStatus(err) == 429
}

// sesAccessCodes are the AWS error codes of refused credentials or a
// missing permission (common to the AWS JSON and REST-JSON services).
var sesAccessCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true, "UnrecognizedClientException": true,
	"InvalidClientTokenId": true, "SignatureDoesNotMatch": true, "IncompleteSignature": true,
	"MissingAuthenticationToken": true, "InvalidSignatureException": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "NotAuthorized": true,
}

func sesAccessDenied(err error) bool {
	if e := apiErrorOf(err); e != nil && sesAccessCodes[e.ErrorCode()] {
		return true
	}
	s := httpStatus(err)
	return s == 401 || s == 403
}

// apiErrorOf returns the smithy.APIError in err's chain, or nil.
func apiErrorOf(err error) smithy.APIError {
	var e smithy.APIError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// httpStatus is the HTTP status of the response that err came from, or 0.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// sesReply is a reply made of what and SES's error code and message:
// "Amazon SES rejected the message: MessageRejected: Email address is not
// verified. …". e may be nil (an HTTP status without an error body).
func sesReply(code int, enhanced, what string, e smithy.APIError) *queue.Reply {
	if e == nil {
		return reply(code, enhanced, what)
	}
	text := what + ": " + e.ErrorCode()
	if msg := e.ErrorMessage(); msg != "" {
		text += ": " + msg
	}
	return reply(code, enhanced, sesClean(text))
}

// sesClean makes a reply's text from what SES said: one line of valid
// UTF-8, every control character and white space run one space, at most
// maxReplyText bytes. apply makes every reply recordable anyway; the
// gateway list keeps the reply of a hop that was down before that, for
// /readyz and its logs.
func sesClean(s string) string {
	s = dsn.ValidUTF8(cutRunes(s, 4*maxReplyText)) // bounded work for what follows
	s = strings.Map(func(r rune) rune {
		if unsafeRune(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxReplyText {
		s = cutRunes(s, maxReplyText-len(truncMark)) + truncMark
	}
	return s
}
