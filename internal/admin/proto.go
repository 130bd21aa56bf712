package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/edgerelay/edgerelay/queue"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxRequestBytes bounds one request line (an ID is at most 64 bytes).
const MaxRequestBytes = 4096

// The operations.
const (
	OpList     = "list"
	OpShow     = "show"
	OpBody     = "body"
	OpRetry    = "retry"
	OpRetryAll = "retry-all"
	OpHold     = "hold"
	OpRelease  = "release"
	OpBounce   = "bounce"
	OpDelete   = "delete"
)

// Error codes of a response that is not ok.
const (
	CodeNotFound   = "not_found"   // no such message (queue.ErrNotFound)
	CodeBadRequest = "bad_request" // not a request of this protocol
	CodeVersion    = "version"     // another protocol version
	CodeBusy       = "busy"        // too many connections; try again
	CodeInternal   = "internal"    // the queue failed
)

// Request is one operation.
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	ID string `json:"id,omitempty"`
}

// needsID reports whether op names one message.
func needsID(op string) bool {
	switch op {
	case OpShow, OpBody, OpRetry, OpHold, OpRelease, OpBounce, OpDelete:
		return true
	}
	return false
}

// Check reports what is wrong with r, as an error response, or nil.
func (r *Request) Check() *Response {
	switch {
	case r.V != Version:
		return errResponse(CodeVersion, fmt.Sprintf("protocol version %d not spoken (this server speaks %d)", r.V, Version))
	case r.Op == OpList || r.Op == OpRetryAll:
		if r.ID != "" {
			return errResponse(CodeBadRequest, "operation "+r.Op+" takes no ID")
		}
	case needsID(r.Op):
		if !queue.ValidID(r.ID) {
			return errResponse(CodeNotFound, "no such message: not a queue ID")
		}
	default:
		return errResponse(CodeBadRequest, "unknown operation")
	}
	return nil
}

// Response is the answer to one request.
type Response struct {
	V       int    `json:"v"`
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"`
	Error   string `json:"error,omitempty"`
	Warning string `json:"warning,omitempty"`
	// Entries answers list, Entry show.
	Entries []queue.Entry `json:"entries,omitempty"`
	Entry   *queue.Entry  `json:"entry,omitempty"`
	// Immediate answers an action: it took effect now, or waits for the
	// next worker that receives the message.
	Immediate bool `json:"immediate,omitempty"`
	// Count answers retry-all.
	Count int `json:"count,omitempty"`
	// BodyBytes announces the body that follows a body response's line
	// (-1: length unknown).
	BodyBytes int64 `json:"body_bytes,omitempty"`
}

func errResponse(code, msg string) *Response {
	return &Response{V: Version, Code: code, Error: msg}
}

// Err returns the response's error as a Go error (ErrNotFound for
// not_found), or nil when it is ok.
func (r *Response) Err() error {
	switch {
	case r.OK:
		return nil
	case r.Code == CodeNotFound:
		return fmt.Errorf("%w (%s)", queue.ErrNotFound, r.Error)
	}
	return &RemoteError{Code: r.Code, Msg: r.Error}
}

// RemoteError is an error the server answered.
type RemoteError struct{ Code, Msg string }

func (e *RemoteError) Error() string { return e.Msg + " (" + e.Code + ")" }

var errTooLong = errors.New("request longer than the limit")

// readRequest reads one request line of at most MaxRequestBytes (the
// line end excluded); a request may also end at the end of the stream.
func readRequest(r io.Reader) (*Request, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxRequestBytes+2), MaxRequestBytes+2)
	line, err := br.ReadSlice('\n')
	if len(bytes.TrimRight(line, "\r\n")) > MaxRequestBytes {
		return nil, errTooLong
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, err
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, fmt.Errorf("not a JSON request: %w", err)
	}
	return &req, nil
}

// writeLine writes v as one JSON line.
func writeLine(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
