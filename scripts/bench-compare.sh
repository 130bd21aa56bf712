#!/usr/bin/env bash
# Runs the shared anchor harness (../shared/bench) against edgerelay and
# Postfix in ONE run, alternating them cell by cell, ROUNDS times, so that a
# slow moment of the shared machine hits both; docs/benchmarks.md reports the
# ratio of their medians per cell (scripts/bench-table.py).
#   scripts/bench-compare.sh [ROUNDS]        (root: installs Postfix with apt)
# Env: PORTS ("587 465"), CS ("16 64"), PERCONNS ("10 1"), DUR (15s),
#      RELAY_ENV (extra VAR=value settings for edgerelay), OUT (results file),
#      LOAD_FLAGS (extra smtpload flags for both servers, e.g. "-resume" for
#      TLS session resumption), QUEUE=sqs (edgerelay on the SQS + S3 backend
#      against the repository's emulator, internal/awstest/awsemu, on
#      127.0.0.1:24566: it measures edgerelay's and the SDK's cost plus the
#      emulator's, not AWS latency), ONLY=edgerelay (skip Postfix).
# edgerelay runs with its defaults (local spool, fsync before every 250, the
# users file with bcrypt) except the per-IP connection cap, which is off
# because all the load comes from 127.0.0.1 (Postfix exempts mynetworks).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${BENCH_DIR:-$ROOT/../shared/bench/anchors}
export ANCHORS=${ANCHORS:-/tmp/anchors}
ROUNDS=${1:-3}
PORTS=${PORTS:-"587 465"} CSS=${CS:-"16 64"} PCS=${PERCONNS:-"10 1"}
OUT=${OUT:-$ANCHORS/compare-$(date +%Y%m%d-%H%M%S).jsonl}
W=$(mktemp -d)
cleanup() {
	kill "$(cat "$W/pid" 2>/dev/null)" 2>/dev/null || true
	kill "$(cat "$W/awsemu.pid" 2>/dev/null)" 2>/dev/null || true
	"$B/postfix.sh" stop >/dev/null 2>&1 || true
	"$B/sink.sh" stop >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT
[ -x /usr/sbin/postfix ] || "$B/postfix.sh" install
[ -f "$ANCHORS/postfix/etc/main.cf" ] || "$B/postfix.sh" configure
go build -o "$W/edgerelay" .
if curl -s -o /dev/null http://127.0.0.1:23080/ 2>/dev/null; then
	echo "something already listens on 127.0.0.1:23080 (another edgerelay?): stop it first" >&2
	exit 1
fi
QENV=() AUXCMD=true
if [ "${QUEUE:-}" = sqs ]; then
	go build -o "$W/awsemu" ./internal/awstest/awsemu
	setsid "$W/awsemu" -addr 127.0.0.1:24566 -queue bench -dlq bench-dlq -bucket bench,bench-bounces >"$W/awsemu.out" 2>&1 &
	echo $! >"$W/awsemu.pid"
	AUXCMD="cat $W/awsemu.pid" # the emulator's CPU is reported as aux_cpu_s
	for _ in $(seq 100); do grep -q '^ready' "$W/awsemu.out" && break; sleep 0.1; done
	QENV=(RELAY_QUEUE=sqs RELAY_SQS_QUEUE_URL="$(awk '$1=="queue" && $2=="bench" {print $3}' "$W/awsemu.out")"
		RELAY_S3_BUCKET=bench RELAY_BOUNCE_STORE=s3://bench-bounces/bounces AWS_ENDPOINT_URL=http://127.0.0.1:24566
		AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test)
fi
echo "bench@anchor.test:$(printf 'bench-secret\n' | "$W/edgerelay" hash-password)" >"$W/users"
"$B/sink.sh" start
"$B/postfix.sh" start
# shellcheck disable=SC2086
env "${QENV[@]}" RELAY_DATA_DIR="$W/data" RELAY_AUTH_FILE="$W/users" RELAY_HOSTNAME=relay.bench \
	RELAY_SUBMISSION_ADDR=127.0.0.1:23587 RELAY_SUBMISSIONS_ADDR=127.0.0.1:23465 RELAY_HTTP_ADDR=127.0.0.1:23080 \
	RELAY_GATEWAY=127.0.0.1:20025 RELAY_GATEWAY_TLS=none RELAY_LOG_LEVEL=warn \
	RELAY_MAX_CONNECTIONS_PER_IP=0 RELAY_DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-16} ${RELAY_ENV:-} \
	setsid "$W/edgerelay" >"$W/log" 2>&1 &
echo $! >"$W/pid"
for _ in $(seq 100); do curl -sf http://127.0.0.1:23080/readyz >/dev/null && break; sleep 0.1; done
kill -0 "$(cat "$W/pid")" 2>/dev/null && curl -sf http://127.0.0.1:23080/readyz >/dev/null || { cat "$W/log" >&2; exit 1; }
flags() { { [ "$1" = 465 ] && echo "-tls -insecure ${LOAD_FLAGS:-}"; } || echo "-starttls -insecure ${LOAD_FLAGS:-}"; }
for r in $(seq "$ROUNDS"); do
	for port in $PORTS; do
		for c in $CSS; do
			for pc in $PCS; do
				[ "${ONLY:-}" = edgerelay ] || CS=$c PERCONNS=$pc TRIES=1 "$B/bench.sh" "postfix-$port" "127.0.0.1:20$port" "$(flags "$port")" \
					"$B/postfix.sh pids" "$B/postfix.sh authpids" >>"$OUT"
				CS=$c PERCONNS=$pc TRIES=1 "$B/bench.sh" "edgerelay-$port" "127.0.0.1:23$port" "$(flags "$port")" \
					"cat $W/pid" "$AUXCMD" >>"$OUT"
			done
		done
	done
	echo "round $r done" >&2
done
errors=$(grep -c '"level":"ERROR"' "$W/log" || true)
grep -m3 '"level":"ERROR"' "$W/log" >&2 || true
echo "edgerelay ERROR lines: $errors; results: $OUT" >&2
