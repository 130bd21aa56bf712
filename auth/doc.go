// Package auth decides who a submitting client is and which sender addresses
// are theirs. Backends: a users file (bcrypt), LDAP (search then bind) and
// OIDC (bearer tokens checked against the issuer's keys, and optionally the
// password grant). The Authenticator chains them and adds failure
// throttling and a short success cache. auth imports nothing of ours and
// knows nothing of SMTP: the session maps its errors to replies.
//
// Invariants:
//   - An outage is never a wrong password: a backend that cannot decide
//     answers ErrUnavailable, and when no backend accepted while one was
//     unavailable the Authenticator answers ErrUnavailable (SMTP 454
//     4.7.0), not ErrBadCredentials (535 5.7.8). A panicking backend is an
//     outage for that attempt, logged with its stack.
//   - The throttle reserves before it asks: every attempt reserves its
//     keys (the client network, the user name, and the directory entry once
//     a backend resolved it) before any backend is asked, so past
//     MaxFailures in a window no attempt reaches a backend, whatever the
//     concurrency. A locked key refuses a correct password too (the lock is
//     no oracle); a success clears the name's and the entry's counts, never
//     the client's. Failures are answered no sooner than the failure delay
//     after the attempt began, so timing does not tell which names exist.
//   - The success cache is read only after the attempt is reserved, keys
//     its entries with an HMAC under a per-process random key (it never
//     holds a password), and is not used for tokens.
//   - An Identity's Addresses are the only senders that user may use
//     (Identity.MaySend); Canonical names the account whatever spelling the
//     client logged in with, and per-user limits are keyed on it.
//   - A shared OIDC issuer (one that serves every organisation) is refused
//     without an allow-list of domains or tenants (ErrSharedIssuer).
//   - No password or token is ever logged.
//
// Options.Observe receives each backend call's outcome and duration, for
// metrics (observe.go). Files: auth.go (errors, Identity, the backend
// interfaces), authenticator.go (Options, Password, Token), backends.go
// (asking the backends in order), failures.go and throttle.go (the
// throttle), cache.go and flight.go (the success cache, shared concurrent
// checks), file.go, ldap*.go, oidc*.go (the backends), ready.go (/readyz).
package auth
