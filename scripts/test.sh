#!/usr/bin/env bash
# Runs every test: vet, gofmt, and go test -race over all packages. Tests
# that need real third-party servers use them when they are installed:
#   slapd + ldap-utils  -> auth tests against a real OpenLDAP (scripts/ldap-test.sh)
#   dovecot-imapd       -> the bounce Maildir served over IMAP (scripts/dovecot-test.sh)
#   python3-flufl.bounce-> NDRs parsed by Mailman's bounce detector
#   curl, swaks + libnet-ssleay-perl -> the README's client commands (e2e)
# and are skipped otherwise. .ci/run installs them all and sets
# EDGERELAY_REQUIRE_SLAPD, EDGERELAY_DOVECOT, EDGERELAY_FLUFL and
# EDGERELAY_REQUIRE_CLIENTS to 1, which make a missing one a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt'd:"; echo "$unformatted"; exit 1
fi

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

if { command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ]; } && [ -x scripts/ldap-test.sh ]; then
  echo "== starting a private slapd"
  eval "$(scripts/ldap-test.sh start)"
  cleanup+=("scripts/ldap-test.sh stop")
elif [ "${EDGERELAY_REQUIRE_SLAPD:-}" = 1 ]; then
  echo "slapd is not installed (apt-get install slapd ldap-utils)"; exit 1
else
  echo "== slapd not installed: real-OpenLDAP tests will be skipped"
fi

echo "== go test -race ./..."
go test -race -count=1 -timeout 15m "$@" ./...
# third_party/go-smtp has its own go.mod, so ./... above does not reach it:
# its tests (upstream's and edgerelay's patches') run from its directory.
echo "== go vet, go test -race ./... in third_party/go-smtp"
(cd third_party/go-smtp && go vet ./... && go test -race -count=1 -timeout 15m "$@" ./...)
