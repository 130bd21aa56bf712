// Package admin serves the operator's queue commands (issue 13;
// `edgerelay queue …`): the same operations of a queue.Admin over a Unix
// socket (the CLI's way in, `docker exec … edgerelay queue list`) and over
// HTTP under /admin/ (bearer token), and the socket's client.
//
// The socket protocol (proto.go), version 1: the client connects, writes
// one request, a JSON object on one line of at most MaxRequestBytes
// ({"v":1,"op":"hold","id":"…"}), and reads one response, a JSON object on
// one line ({"v":1,"ok":true,"immediate":true} or {"v":1,"ok":false,
// "code":"not_found","error":"…"}); for "body" the line is followed by
// the message as stored, to the end of the connection. Then the server
// closes. A request of another version is answered with code "version".
//
// Invariants:
//   - The server never panics on a request and answers each connection
//     with at most one response, or closes it: a request longer than
//     MaxRequestBytes, not JSON, or not finished within the read deadline
//     is answered "bad_request" (or closed when even that cannot be
//     written); a client that does not read its response is cut off at
//     the write deadline. At most MaxConns connections are served at once;
//     past that the answer is "busy", so slow or hung clients cannot hold
//     the server.
//   - The socket file is created with mode 0600 (in a private directory,
//     then renamed into place: never reachable with a wider mode), only by
//     the process that holds its lock file (<socket>.lock); a stale socket
//     file is removed only once that lock is held, a file that is not a
//     socket never; Close removes it.
//   - HTTP (http.go) compares the bearer token in constant time
//     (crypto/subtle over SHA-256 digests, so the length does not leak
//     either), answers 401 with WWW-Authenticate (RFC 6750 §3) without it
//     or with a wrong one, and serves the same operations and responses.
//
// Files: proto.go (request, response, ops, limits), server.go (the
// operations and the socket server), socket.go (creating and removing the
// socket; its lock file is internal/safefile's Lock), http.go (the
// /admin/ handler), client.go (the CLI's side).
package admin
