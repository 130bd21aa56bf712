#!/usr/bin/env bash
# Runs the shared anchor harness (../shared/bench: smtpload + Postfix's
# smtp-sink) against edgerelay, so its figures sit next to Postfix, Haraka
# and chasquid measured the same way. Appends to $ANCHORS/results.jsonl.
#   scripts/bench-anchors.sh [NAME]      (needs root for apt: postfix)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${BENCH_DIR:-$ROOT/../shared/bench/anchors}
export ANCHORS=${ANCHORS:-/tmp/anchors}
NAME=${1:-edgerelay}
W=$(mktemp -d); trap 'kill $(cat $W/pid 2>/dev/null) 2>/dev/null; rm -rf "$W"' EXIT
go build -o "$W/edgerelay" .
echo "bench@anchor.test:$(printf 'bench-secret\n' | "$W/edgerelay" hash-password)" > "$W/users"
"$B/sink.sh" start
RELAY_DATA_DIR="$W/data" RELAY_AUTH_FILE="$W/users" RELAY_HOSTNAME=relay.bench \
RELAY_SUBMISSION_ADDR=127.0.0.1:23587 RELAY_SUBMISSIONS_ADDR=127.0.0.1:23465 RELAY_HTTP_ADDR=127.0.0.1:23080 \
RELAY_GATEWAY=127.0.0.1:20025 RELAY_GATEWAY_TLS=none RELAY_LOG_LEVEL=warn \
RELAY_MAX_CONNECTIONS_PER_IP=0 RELAY_DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-16} \
  setsid "$W/edgerelay" >"$W/log" 2>&1 &
echo $! > "$W/pid"
for _ in $(seq 100); do curl -sf http://127.0.0.1:23080/readyz >/dev/null && break; sleep 0.1; done
"$B/bench.sh" "$NAME-587" 127.0.0.1:23587 "-starttls -insecure" "cat $W/pid"
"$B/bench.sh" "$NAME-465" 127.0.0.1:23465 "-tls -insecure" "cat $W/pid"
"$B/sink.sh" stop
grep -c '"level":"ERROR"' "$W/log" || true
