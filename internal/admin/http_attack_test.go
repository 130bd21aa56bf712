package admin

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// countAdmin is memAdmin counting the calls that change the queue.
type countAdmin struct {
	memAdmin
	n atomic.Int64
}

func (c *countAdmin) Retry(ctx context.Context, id string) (bool, error) {
	c.n.Add(1)
	return c.memAdmin.Retry(ctx, id)
}
func (c *countAdmin) RetryAll(ctx context.Context) (int, error) {
	c.n.Add(1)
	return c.memAdmin.RetryAll(ctx)
}
func (c *countAdmin) Hold(ctx context.Context, id string) (bool, error) {
	c.n.Add(1)
	return c.memAdmin.Hold(ctx, id)
}
func (c *countAdmin) Release(ctx context.Context, id string) (bool, error) {
	c.n.Add(1)
	return c.memAdmin.Release(ctx, id)
}
func (c *countAdmin) Bounce(ctx context.Context, id string) (bool, error) {
	c.n.Add(1)
	return c.memAdmin.Bounce(ctx, id)
}
func (c *countAdmin) Delete(ctx context.Context, id string) (bool, error) {
	c.n.Add(1)
	return c.memAdmin.Delete(ctx, id)
}

// TestAttackHTTPNoMutationWithoutItsMethod: with the right token, no
// request changes the queue except POST …/{action}, POST …/retry-all and
// DELETE …/{id}: GET, HEAD, PUT, PATCH, OPTIONS of those paths, dot
// segments and percent-encoded slashes in the ID (/admin/queue/../x,
// %2F, %2e%2e) change nothing (a link or a prefetch cannot act).
func TestAttackHTTPNoMutationWithoutItsMethod(t *testing.T) {
	c := &countAdmin{}
	h := Handler(testToken, &Server{Admin: c})
	auth := "Bearer " + testToken
	for _, path := range []string{
		"/admin/queue/" + memID + "/hold", "/admin/queue/" + memID + "/release", "/admin/queue/" + memID + "/bounce",
		"/admin/queue/" + memID + "/retry", "/admin/queue/retry-all", "/admin/queue/" + memID,
	} {
		for _, m := range []string{"GET", "HEAD", "PUT", "PATCH", "OPTIONS"} {
			httpDo(t, h, m, path, auth)
		}
	}
	for _, path := range []string{
		"/admin/queue/x/../" + memID + "/hold", "/admin/queue/" + memID + "%2Fhold", "/admin/queue/%2e%2e/" + memID + "/hold",
		"/admin/queue/" + memID + "%2F..%2F" + memID + "/hold", "/admin/queue/" + memID + "/hold/",
	} {
		res, _ := httpDo(t, h, "POST", path, auth)
		if res.StatusCode == 200 {
			t.Errorf("POST %s: 200", path)
		}
	}
	if res, _ := httpDo(t, h, "DELETE", "/admin/queue/%2e%2e%2F"+memID, auth); res.StatusCode == 200 {
		t.Errorf("DELETE with dot segments: 200")
	}
	if n := c.n.Load(); n != 0 {
		t.Fatalf("%d changes made without POST or DELETE of their own path", n)
	}
	if res, _ := httpDo(t, h, "POST", "/admin/queue/"+memID+"/hold", auth); res.StatusCode != 200 || c.n.Load() != 1 {
		t.Fatalf("the real POST: %d, %d calls", res.StatusCode, c.n.Load())
	}
}

// TestAttackHTTPActionLogged: an action over HTTP is logged with the
// client's address (the socket's caller is local; an HTTP caller with the
// token may be anywhere, and the log line was the only trace of it).
func TestAttackHTTPActionLogged(t *testing.T) {
	var logs testutil.LogBuffer
	h := Handler(testToken, &Server{Admin: memAdmin{}, Logger: logs.Logger()})
	req := httptest.NewRequest("DELETE", "/admin/queue/"+memID, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.RemoteAddr = "198.51.100.7:40123"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if l := logs.String(); !strings.Contains(l, "operator action") || !strings.Contains(l, "remote=198.51.100.7:40123") {
		t.Fatalf("log without the client's address:\n%s", l)
	}
}
