package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzAdminHTTP: whatever the method, path and Authorization header, the
// handler does not panic, answers in time, runs nothing without the exact
// token (401 with WWW-Authenticate), and otherwise answers one of its
// status codes with its JSON (or the message, for a body).
func FuzzAdminHTTP(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/admin/queue", "Bearer " + testToken},
		{"DELETE", "/admin/queue/" + memID, "Bearer " + testToken},
		{"POST", "/admin/queue/" + memID + "/bounce", "bearer " + testToken},
		{"GET", "/admin/queue/" + memID + "/body", "Bearer " + testToken},
		{"POST", "/admin/queue/retry-all", "Bearer  " + testToken + " "},
		{"GET", "/admin/queue/%00/body", "Bearer " + testToken},
		{"PATCH", "/admin/../admin/queue", "Basic eDp5"},
		{"GET", "/admin/queue", "Bearer " + testToken + "\x00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	h := Handler(testToken, &Server{Admin: memAdmin{}})
	f.Fuzz(func(t *testing.T, method, path, auth string) {
		u, err := url.ParseRequestURI("/admin/" + strings.TrimPrefix(path, "/admin/"))
		if err != nil || !validMethod(method) {
			return
		}
		req := &http.Request{Method: method, URL: u, Header: http.Header{"Authorization": {auth}}, RequestURI: u.RequestURI(), Host: "x"}
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s %s: no answer in 2 s", method, path)
		}
		tok, ok := bearer(auth)
		authorized := ok && tok == testToken
		switch {
		case !authorized:
			if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s with %q: %d", method, path, auth, rec.Code)
			}
		case rec.Header().Get("Content-Type") == "message/rfc822":
			if rec.Code != 200 {
				t.Fatalf("body with %d", rec.Code)
			}
		case rec.Code == 301 || rec.Code == 307 || rec.Code == 308 || rec.Code == 405:
			// net/http's own answers (path cleaning, methods).
		default:
			var r Response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.V != Version {
				t.Fatalf("%s %s: %d %q", method, path, rec.Code, rec.Body)
			}
			if ok := rec.Code == 200; ok != r.OK {
				t.Fatalf("%s %s: status %d with ok=%v", method, path, rec.Code, r.OK)
			}
		}
	})
}

// validMethod is a method token as net/http accepts one.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < '!' || c > '~' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}
