package e2e

import (
	"encoding/base64"
	"os"
	"os/exec"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The real clients the README shows (curl, swaks with TLS) are used where
// they are installed and skipped elsewhere; EDGERELAY_REQUIRE_CLIENTS=1
// (CI, which installs them) turns a missing one into a failure, as
// EDGERELAY_REQUIRE_SLAPD, EDGERELAY_DOVECOT and EDGERELAY_FLUFL do for
// theirs, so that these tests cannot silently stop running there.
func clientsRequired() bool { return os.Getenv("EDGERELAY_REQUIRE_CLIENTS") == "1" }

// requireClient returns the path of the client program name, or skips the
// test when it is not installed (fails it with EDGERELAY_REQUIRE_CLIENTS=1);
// pkgs are the Debian packages that install it.
func requireClient(t *testing.T, name, pkgs string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if clientsRequired() {
		t.Fatalf("EDGERELAY_REQUIRE_CLIENTS=1 but %s is not installed (apt-get install %s)", name, pkgs)
	}
	t.Skipf("%s is not installed (apt-get install %s; EDGERELAY_REQUIRE_CLIENTS=1 requires it)", name, pkgs)
	return ""
}

// missingClient reports a client that a test would use after its main
// checks have passed: an error with EDGERELAY_REQUIRE_CLIENTS=1, else a
// log line (the test's own result stands).
func missingClient(t *testing.T, why string) {
	t.Helper()
	if clientsRequired() {
		t.Errorf("EDGERELAY_REQUIRE_CLIENTS=1 but %s", why)
		return
	}
	t.Logf("%s: skipped (EDGERELAY_REQUIRE_CLIENTS=1 requires it)", why)
}
