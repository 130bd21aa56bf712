package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Client errors that the command line explains.
var (
	// ErrNoServer: nothing listens on the socket (no such file, or a
	// socket file left by a process that died).
	ErrNoServer = errors.New("no process serves the admin socket")
	// ErrPermission: the socket exists and this user may not use it.
	ErrPermission = errors.New("permission denied on the admin socket")
)

// MaxResponseLine bounds the response line the client reads (a list of a
// large queue is long).
const MaxResponseLine = 1 << 30

// Call sends req over the socket at path and returns the response; for a
// body request, the message is copied to body. ctx's deadline bounds the
// whole exchange (none: 5 minutes).
func Call(ctx context.Context, path string, req Request, body io.Writer) (*Response, error) {
	req.V = Version
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w: %s: %w", ErrNoServer, path, err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("%w: %s: %w", ErrPermission, path, err)
	case err != nil:
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(5 * time.Minute))
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	// A server that is busy answers without reading the request: the
	// write may fail, and its answer is still there to read.
	werr := writeLine(c, req)
	br := bufio.NewReaderSize(io.LimitReader(c, MaxResponseLine), 64<<10)
	line, err := readLine(br)
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("sending the request: %w", werr)
		}
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if resp.OK && req.Op == OpBody && body != nil {
		n, err := io.Copy(body, br)
		if err != nil {
			return &resp, fmt.Errorf("reading the message: %w", err)
		}
		if resp.BodyBytes >= 0 && n != resp.BodyBytes {
			return &resp, fmt.Errorf("message cut short: %d of %d bytes", n, resp.BodyBytes)
		}
	}
	return &resp, nil
}

// readLine reads one line of any length (within the reader's limit).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			return nil, err
		}
		return line, nil
	}
}
