package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Handler serves the operations under /admin/ to requests that carry
// "Authorization: Bearer <token>" (RFC 6750 §2.1). token must not be
// empty (the caller does not mount the handler then). Routes:
//
//	GET    /admin/queue                 list
//	GET    /admin/queue/{id}            show
//	GET    /admin/queue/{id}/body       the message (message/rfc822)
//	POST   /admin/queue/{id}/retry      also hold, release, bounce
//	DELETE /admin/queue/{id}            delete
//	POST   /admin/queue/retry-all
//
// Responses are the socket's JSON (Response), with 200, 404 (no such
// message or route), 400, 500 or 503.
func Handler(token string, s *Server) http.Handler {
	s.init()
	want := sha256.Sum256([]byte(token))
	mux := http.NewServeMux()
	op := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.serveHTTP(w, r, &Request{V: Version, Op: name, ID: r.PathValue("id")})
		}
	}
	mux.HandleFunc("GET /admin/queue", op(OpList))
	mux.HandleFunc("GET /admin/queue/{id}", op(OpShow))
	mux.HandleFunc("GET /admin/queue/{id}/body", op(OpBody))
	mux.HandleFunc("POST /admin/queue/retry-all", op(OpRetryAll))
	mux.HandleFunc("DELETE /admin/queue/{id}", op(OpDelete))
	mux.HandleFunc("POST /admin/queue/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch a := r.PathValue("action"); a {
		case OpRetry, OpHold, OpRelease, OpBounce:
			s.serveHTTP(w, r, &Request{V: Version, Op: a, ID: r.PathValue("id")})
		default:
			writeHTTP(w, http.StatusNotFound, errResponse(CodeBadRequest, "no such action: want retry, hold, release or bounce"))
		}
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeHTTP(w, http.StatusNotFound, errResponse(CodeBadRequest, "no such operation: see GET /admin/queue"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgerelay admin"`)
			writeHTTP(w, http.StatusUnauthorized, errResponse("unauthorized", "an Authorization: Bearer token is required"))
			return
		}
		if !tokenEqual(got, want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgerelay admin", error="invalid_token"`)
			writeHTTP(w, http.StatusUnauthorized, errResponse("unauthorized", "the bearer token is not the admin token"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer …" value (the
// scheme is case-insensitive, RFC 6750 §2.1 and RFC 9110 §11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// tokenEqual compares got with the digest of the admin token in constant
// time: both are hashed first, so neither the content nor the length of
// the token shows in the time taken.
func tokenEqual(got string, want [sha256.Size]byte) bool {
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(g[:], want[:]) == 1
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, req *Request) {
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr), s.OpTimeout)
	defer cancel()
	resp, body := s.Do(ctx, req)
	if body != nil {
		defer body.Close()
		w.Header().Set("Content-Type", "message/rfc822")
		if resp.BodyBytes >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.BodyBytes, 10))
		}
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, body); err != nil {
			s.Logger.Warn("admin: body not sent whole", "id", req.ID, "err", err)
		}
		return
	}
	status := http.StatusOK
	switch resp.Code {
	case "":
	case CodeNotFound:
		status = http.StatusNotFound
	case CodeBadRequest, CodeVersion:
		status = http.StatusBadRequest
	case CodeBusy:
		status = http.StatusServiceUnavailable
	default:
		status = http.StatusInternalServerError
	}
	writeHTTP(w, status, resp)
}

func writeHTTP(w http.ResponseWriter, status int, resp *Response) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(resp)
}
