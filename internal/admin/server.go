package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Defaults of Server's limits.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultOpTimeout    = 60 * time.Second
	DefaultWriteTimeout = 5 * time.Minute
	DefaultMaxConns     = 16
)

// Server runs the operations on a queue.Admin, for the socket (Serve) and
// for HTTP (Handler).
type Server struct {
	Admin  queue.Admin
	Logger *slog.Logger // nil: discard
	// ReadTimeout bounds reading the request; OpTimeout the operation;
	// WriteTimeout writing the response (a body or a long list included).
	ReadTimeout, OpTimeout, WriteTimeout time.Duration
	// MaxConns bounds the socket connections served at once.
	MaxConns int

	once  sync.Once
	slots chan struct{}
	wg    sync.WaitGroup
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.ReadTimeout <= 0 {
			s.ReadTimeout = DefaultReadTimeout
		}
		if s.OpTimeout <= 0 {
			s.OpTimeout = DefaultOpTimeout
		}
		if s.WriteTimeout <= 0 {
			s.WriteTimeout = DefaultWriteTimeout
		}
		if s.MaxConns <= 0 {
			s.MaxConns = DefaultMaxConns
		}
		s.slots = make(chan struct{}, s.MaxConns)
	})
}

// Serve answers connections from ln until it is closed, then waits for
// the connections in progress (each bounded by the deadlines). It returns
// nil once ln is closed; other accept errors are retried.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	defer s.wg.Wait()
	pause := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and the like pass: try again, backing off up to 1 s
			// (as net/http does), rather than stop serving for good.
			s.Logger.Warn("admin: accept failed; retrying", "err", err, "in", pause)
			time.Sleep(pause)
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		select {
		case s.slots <- struct{}{}:
		default:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			writeLine(c, errResponse(CodeBusy, "too many operator connections at once; try again"))
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.serveConn(c)
		}()
	}
}

// serveConn answers one connection: one request, one response.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	defer lingerClose(c)
	defer func() {
		if p := recover(); p != nil {
			s.Logger.Error("admin: panic answering a request", "panic", fmt.Sprint(p))
		}
	}()
	c.SetReadDeadline(time.Now().Add(s.ReadTimeout))
	req, err := readRequest(c)
	c.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	if err != nil {
		writeLine(c, errResponse(CodeBadRequest, "bad request: "+err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.OpTimeout)
	defer cancel()
	resp, body := s.Do(ctx, req)
	if body != nil {
		defer body.Close()
	}
	if err := writeLine(c, resp); err != nil || body == nil {
		return
	}
	if _, err := io.Copy(c, body); err != nil {
		s.Logger.Warn("admin: body not sent whole", "id", req.ID, "err", err)
	}
}

// Do runs req. For a body request that succeeded, body is the message to
// send after the response (the caller closes it).
func (s *Server) Do(ctx context.Context, req *Request) (resp *Response, body io.ReadCloser) {
	s.init()
	if bad := req.Check(); bad != nil {
		return bad, nil
	}
	a := s.Admin
	resp = &Response{V: Version, OK: true}
	var err error
	switch req.Op {
	case OpList:
		resp.Entries, err = a.List(ctx)
		if err != nil && len(resp.Entries) > 0 {
			resp.Warning, err = err.Error(), nil // a partial list (SQS: past MaxListed)
		}
		if resp.Entries == nil {
			resp.Entries = []queue.Entry{}
		}
	case OpShow:
		resp.Entry, err = a.Show(ctx, req.ID)
	case OpBody:
		body, err = a.OpenBody(ctx, req.ID)
		resp.BodyBytes = -1
		if sz, ok := body.(interface{ Size() int64 }); ok && err == nil {
			resp.BodyBytes = sz.Size()
		}
	case OpRetry:
		resp.Immediate, err = a.Retry(ctx, req.ID)
	case OpRetryAll:
		resp.Count, err = a.RetryAll(ctx)
	case OpHold:
		resp.Immediate, err = a.Hold(ctx, req.ID)
	case OpRelease:
		resp.Immediate, err = a.Release(ctx, req.ID)
	case OpBounce:
		resp.Immediate, err = a.Bounce(ctx, req.ID)
	case OpDelete:
		resp.Immediate, err = a.Delete(ctx, req.ID)
	}
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return errResponse(CodeNotFound, "no such message: "+req.ID), nil
	case err != nil:
		s.Logger.Warn("admin: operation failed", "op", req.Op, "id", req.ID, "err", err)
		return errResponse(CodeInternal, err.Error()), nil
	}
	if req.Op != OpList && req.Op != OpShow && req.Op != OpBody {
		attrs := []any{"op", req.Op, "id", req.ID, "immediate", resp.Immediate, "count", resp.Count}
		if ra, ok := ctx.Value(remoteKey{}).(string); ok {
			attrs = append(attrs, "remote", ra) // over HTTP: who acted
		}
		s.Logger.Info("admin: operator action", attrs...)
	}
	return resp, body
}

// remoteKey carries an HTTP client's address in the context of Do, for
// the log line of an action.
type remoteKey struct{}

// lingerClose ends the response (the client reads its end) and drains
// what the client sent past its request, briefly and boundedly: a socket
// closed with unread input is reset, and the client would lose the
// response it has not read yet.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}
