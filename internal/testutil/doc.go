// Package testutil holds the small helpers that tests of several packages
// share: a log sink that can be read while it is written (LogBuffer), a
// settable clock (Clock), a time bound on loops over remote bytes
// (ReturnsWithin), a throwaway certificate authority and its certificates
// for TLS on loopback (cert.go), loopback ports never handed out twice
// (FreeAddr, port.go), and real faults: a full tmpfs and a
// read-only mount (mount.go).
//
// Invariants:
//   - Test support only: production code never imports it.
//   - A fault test never fakes its fault: without root and mount(8) it is
//     skipped, and EDGERELAY_REQUIRE_ROOT=1 (CI) makes that a failure, so
//     that it cannot silently stop running.
//   - What a helper creates (mounts, files, certificates' temporary files)
//     is removed when the test ends.
package testutil
