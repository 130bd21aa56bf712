package admin

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

const testToken = "s3cret-admin-token"

func httpDo(t *testing.T, h http.Handler, method, path, auth string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestHTTPAuth: without a bearer token, with another scheme or with a
// wrong token the answer is 401 with WWW-Authenticate and nothing runs;
// with the right one the operations answer.
func TestHTTPAuth(t *testing.T) {
	s, ids := spoolWith(t, "bob@example.net")
	h := Handler(testToken, &Server{Admin: s})
	for name, auth := range map[string]string{
		"none":         "",
		"basic":        "Basic " + testToken,
		"empty bearer": "Bearer ",
		"wrong":        "Bearer not-the-token",
		"prefix":       "Bearer " + testToken[:5],
		"longer":       "Bearer " + testToken + "x",
		"token alone":  testToken,
	} {
		for _, m := range [][2]string{{"GET", "/admin/queue"}, {"DELETE", "/admin/queue/" + ids[0]}, {"GET", "/admin/nothing"}} {
			res, body := httpDo(t, h, m[0], m[1], auth)
			if res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") ||
				!strings.Contains(body, `"code":"unauthorized"`) || strings.Contains(body, testToken) {
				t.Fatalf("%s %v: %d %q %s", name, m, res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
			}
		}
	}
	if _, err := s.Show(t.Context(), ids[0]); err != nil {
		t.Fatalf("a refused DELETE removed the message: %v", err)
	}
	right := "Bearer " + testToken
	res, body := httpDo(t, h, "GET", "/admin/queue", right)
	var r Response
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &r) != nil || !r.OK || len(r.Entries) != 1 {
		t.Fatalf("list: %d %s", res.StatusCode, body)
	}
	if res, _ := httpDo(t, h, "GET", "/admin/queue", "bearer "+testToken); res.StatusCode != 200 {
		t.Fatalf("lower-case scheme: %d", res.StatusCode)
	}
	res, body = httpDo(t, h, "GET", "/admin/queue/"+ids[0]+"/body", right)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "message/rfc822" || !strings.HasPrefix(body, "Subject: to bob") {
		t.Fatalf("body: %d %v %q", res.StatusCode, res.Header, body)
	}
	for _, c := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"GET", "/admin/queue/" + ids[0], 200, `"addr":"bob@example.net"`},
		{"POST", "/admin/queue/" + ids[0] + "/hold", 200, `"immediate":true`},
		{"POST", "/admin/queue/" + ids[0] + "/release", 200, `"ok":true`},
		{"POST", "/admin/queue/" + ids[0] + "/retry", 200, `"ok":true`},
		{"POST", "/admin/queue/retry-all", 200, `"ok":true`},
		{"POST", "/admin/queue/" + ids[0] + "/explode", 404, `no such action`},
		{"GET", "/admin/queue/NOSUCH", 404, `"code":"not_found"`},
		{"GET", "/admin/other", 404, `no such operation`},
		{"PUT", "/admin/queue/" + ids[0], 404, `no such operation`},
		{"POST", "/admin/queue/" + ids[0] + "/bounce", 200, `"immediate":true`},
		{"DELETE", "/admin/queue/" + ids[0], 200, `"immediate":true`},
		{"DELETE", "/admin/queue/" + ids[0], 404, `"code":"not_found"`},
	} {
		res, body := httpDo(t, h, c.method, c.path, right)
		if res.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s", c.method, c.path, res.StatusCode, body)
		}
	}
}

// TestTokenCompare: tokenEqual accepts exactly the token, and the check
// is the constant-time one (crypto/subtle over digests): the handler's
// source compares no token with ==.
func TestTokenCompare(t *testing.T) {
	want := sha256.Sum256([]byte(testToken))
	for tok, ok := range map[string]bool{testToken: true, "": false, testToken[:3]: false, testToken + " ": false, strings.ToUpper(testToken): false} {
		if tokenEqual(tok, want) != ok {
			t.Errorf("tokenEqual(%q) = %v", tok, !ok)
		}
	}
	src, err := os.ReadFile("http.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "subtle.ConstantTimeCompare(g[:], want[:])") ||
		strings.Contains(string(src), "got == ") || strings.Contains(string(src), "== token") {
		t.Fatal("http.go no longer compares the token with crypto/subtle alone")
	}
}
