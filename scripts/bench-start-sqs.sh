#!/usr/bin/env bash
# Start-up time of an SQS + S3 front end (issue 13: what scale-to-zero
# costs a first connection; fly.toml and README): scripts/bench-start.sh's
# measurement (exec of the built edgerelay to its STARTTLS port accepting a
# TCP connection, polled every 0.2 ms, median of RUNS) with
# RELAY_ROLE=submission and RELAY_QUEUE=sqs against the repository's
# SQS + S3 emulator on loopback (internal/awstest/awsemu). Start-up includes
# the checks of the queue and the bucket, answered here by the emulator in
# well under a millisecond each: against AWS, add their round trips.
#   scripts/bench-start-sqs.sh [RUNS]     (default 11)
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d)
EMU=""
trap '[ -z "$EMU" ] || kill "$EMU" 2>/dev/null || true; rm -rf "$W"' EXIT
go build -o "$W/awsemu" ./internal/awstest/awsemu
EMU_ADDR=127.0.0.1:${EMU_PORT:-25697}
"$W/awsemu" -addr "$EMU_ADDR" -queue edgerelay -dlq edgerelay-dlq -bucket edgerelay-mail >"$W/emu.log" 2>&1 &
EMU=$!
for _ in $(seq 100); do grep -q '^ready' "$W/emu.log" && break; sleep 0.1; done
grep -q '^ready' "$W/emu.log" || { cat "$W/emu.log"; exit 1; }
export AWS_ENDPOINT_URL=http://$EMU_ADDR AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
RELAY_ENV="RELAY_ROLE=submission RELAY_QUEUE=sqs RELAY_SQS_QUEUE_URL=http://$EMU_ADDR/000000000000/edgerelay RELAY_S3_BUCKET=edgerelay-mail" \
  scripts/bench-start.sh "${1:-11}"
