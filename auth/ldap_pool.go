package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// ldapConn is a go-ldap connection and the TCP connection under it, on which
// deadlines are set (they apply through TLS too).
type ldapConn struct {
	l   *ldap.Conn
	raw net.Conn
}

// do runs fn with a deadline on the socket, and go-ldap's own request
// timeout, of timeout or ctx's deadline, whichever is sooner. Cancelling
// ctx unblocks fn by moving the deadline to now.
func (c *ldapConn) do(ctx context.Context, timeout time.Duration, fn func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return ldap.NewError(ldap.ErrorNetwork, err)
	}
	deadline := opDeadline(ctx, timeout)
	_ = c.raw.SetDeadline(deadline)
	c.l.SetTimeout(time.Until(deadline))
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(time.Now()) })
	err := fn(c.l)
	stop()
	// Clear the deadline so that the idle connection's reader goroutine
	// does not time out in the pool. If fn timed out, the connection is
	// already closing and is discarded by the pool.
	_ = c.raw.SetDeadline(time.Time{})
	if err != nil && ctx.Err() != nil {
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("%w (%v)", ctx.Err(), err))
	}
	return err
}

func (c *ldapConn) close() {
	c.l.SetTimeout(time.Second) // bounds Close's wait for the reader
	_ = c.l.Close()
}

// broken reports whether err means the connection can no longer be used.
func (c *ldapConn) broken(err error) bool {
	if c.l.IsClosing() {
		return true
	}
	if err == nil {
		return false
	}
	var ne net.Error
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || errors.As(err, &ne)
}

// ldapPool keeps up to size idle connections and lets at most size callers
// use connections at once. Channels only: nothing is locked while a
// connection is dialled or used.
type ldapPool struct {
	idle  chan *ldapConn
	slots chan struct{}
	dial  func(context.Context) (*ldapConn, error)
	// abort, if set, gives a channel that closes when waiting for a slot
	// is pointless (the directory was found not answering).
	abort func() <-chan struct{}
}

func newLDAPPool(size int, dial func(context.Context) (*ldapConn, error)) *ldapPool {
	return &ldapPool{idle: make(chan *ldapConn, size), slots: make(chan struct{}, size), dial: dial}
}

// with runs fn on a connection. A pooled connection that turns out to be
// dead (the server restarted, an idle timeout closed it) is discarded with
// the other idle ones, which are likely dead too, and fn is retried once on
// a fresh connection. A timeout is not retried, nor is any error on a fresh
// connection.
func (p *ldapPool) with(ctx context.Context, fn func(*ldapConn) error) error {
	var abort <-chan struct{}
	if p.abort != nil && ctx.Value(noAbortKey{}) == nil {
		abort = p.abort()
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("waiting for a connection: %w", ctx.Err()))
	case <-abort:
		return ldap.NewError(ldap.ErrorNetwork, errors.New("waiting for a connection: the directory is not answering"))
	}
	defer func() { <-p.slots }()

	c, pooled := p.get()
	for {
		if c == nil {
			var err error
			if c, err = p.dial(ctx); err != nil {
				return err
			}
		}
		err := fn(c)
		if !c.broken(err) {
			p.put(c)
			return err
		}
		c.close()
		if !pooled || ctx.Err() != nil || isTimeout(err) {
			return err
		}
		p.closeIdle()
		c, pooled = nil, false
	}
}

// noAbortKey marks the context of a check that must not give up on the
// pool's abort signal: the probe of a directory believed down.
type noAbortKey struct{}

func withoutAbort(ctx context.Context) context.Context {
	return context.WithValue(ctx, noAbortKey{}, true)
}

// isTimeout reports whether err is a deadline or go-ldap request timeout.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "timed out")
}

// get returns an idle connection that is not known to be closed, or nil.
func (p *ldapPool) get() (*ldapConn, bool) {
	for {
		select {
		case c := <-p.idle:
			if c.l.IsClosing() {
				c.close()
				continue
			}
			return c, true
		default:
			return nil, false
		}
	}
}

func (p *ldapPool) put(c *ldapConn) {
	select {
	case p.idle <- c:
	default:
		c.close()
	}
}

func (p *ldapPool) closeIdle() {
	for {
		select {
		case c := <-p.idle:
			c.close()
		default:
			return
		}
	}
}
