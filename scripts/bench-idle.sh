#!/usr/bin/env bash
# What an idle authenticated session costs the server (issue 10): builds
# edgerelay, starts it with its defaults (local spool, users file with
# bcrypt, self-signed certificate) on loopback, opens N sessions with
# tools/idleload (STARTTLS + AUTH PLAIN, then idle), and reports the
# server's RSS (VmRSS, VmHWM) before and with the sessions, the RSS per
# session, and a heap profile (RELAY_PPROF) saved in $OUT.
#   scripts/bench-idle.sh [N]        (default 10000)
# Env: OUT (directory for the profiles; default a temp dir that is kept),
#      RELAY_ENV (extra VAR=value settings for edgerelay).
# The connection limits are raised for the measurement only
# (RELAY_MAX_CONNECTIONS=0, RELAY_MAX_CONNECTIONS_PER_IP=0); the sessions
# also come from 100 source addresses. The idle timeout stays at its
# default (5 min): idleload opens 10,000 sessions well within it and the
# figures are read as soon as the last one is open.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
W=$(mktemp -d)
OUT=${OUT:-$(mktemp -d /tmp/bench-idle.XXXXXX)}
mkdir -p "$OUT"
cleanup() {
	[ -f "$W/lpid" ] && kill "$(cat "$W/lpid")" 2>/dev/null || true
	[ -f "$W/pid" ] && kill "$(cat "$W/pid")" 2>/dev/null || true
	sleep 0.5
	rm -rf "$W"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
go build -o "$W/edgerelay" .
go build -o "$W/idleload" ./tools/idleload
echo "idle@bench.test:$(printf 'idle-secret\n' | "$W/edgerelay" hash-password)" >"$W/users"
PORT=${PORT:-24587}
HTTP=127.0.0.1:${HTTPPORT:-24080}
# shellcheck disable=SC2086
env RELAY_DATA_DIR="$W/data" RELAY_AUTH_FILE="$W/users" RELAY_HOSTNAME=relay.bench \
	RELAY_SUBMISSION_ADDR=127.0.0.1:$PORT RELAY_SUBMISSIONS_ADDR= RELAY_HTTP_ADDR=$HTTP \
	RELAY_GATEWAY=127.0.0.1:9 RELAY_GATEWAY_TLS=none RELAY_LOG_LEVEL=warn RELAY_PPROF=true \
	RELAY_MAX_CONNECTIONS=0 RELAY_MAX_CONNECTIONS_PER_IP=0 ${RELAY_ENV:-} \
	setsid "$W/edgerelay" >"$W/log" 2>&1 &
echo $! >"$W/pid"
PID=$(cat "$W/pid")
for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$PID/status"; }
R0=$(rss VmRSS)
echo "server pid $PID, RSS at start ${R0} kB"

"$W/idleload" -addr "127.0.0.1:$PORT" -n "$N" -sources 100 -c 32 -user idle@bench.test -pass idle-secret \
	>"$W/idleload.out" 2>&1 &
echo $! >"$W/lpid"
until grep -q '^ready ' "$W/idleload.out"; do
	sleep 2
	tail -n 1 "$W/idleload.out"
	kill -0 "$(cat "$W/lpid")" 2>/dev/null || { cat "$W/idleload.out"; exit 1; }
done
grep -E '^(ready|first error)' "$W/idleload.out"
OPEN=$(awk '/^ready /{print $2}' "$W/idleload.out")
sleep 5 # let the last handshakes' garbage become collectable
R1=$(rss VmRSS) H1=$(rss VmHWM)
curl -sf "http://$HTTP/debug/pprof/heap" -o "$OUT/heap.pb.gz"
curl -sf "http://$HTTP/debug/pprof/goroutine?debug=1" -o "$OUT/goroutine.txt"
curl -sf "http://$HTTP/metrics" | grep -E '^go_(memstats_(heap_(alloc|inuse|idle|sys)|stack_(inuse|sys)|sys)_bytes|goroutines|gc_gogc)' >"$OUT/memstats.txt" || true
# Force a GC (the heap profile's ?gc=1) and read RSS again: what is live.
curl -sf "http://$HTTP/debug/pprof/heap?gc=1" -o /dev/null
sleep 1
R2=$(rss VmRSS)
echo "sessions open: $OPEN"
echo "VmRSS with sessions: ${R1} kB (VmHWM ${H1} kB); after a forced GC ${R2} kB"
awk -v r0="$R0" -v r1="$R1" -v r2="$R2" -v n="$OPEN" 'BEGIN {
	printf "total RSS %.1f MB; per session %.1f kB (RSS minus RSS at start, / sessions); after GC %.1f kB\n",
		r1*1024/1e6, (r1-r0)*1024/n/1000, (r2-r0)*1024/n/1000 }'
cat "$OUT/memstats.txt"
echo "profiles in $OUT (go tool pprof -sample_index=inuse_space -top $W/edgerelay $OUT/heap.pb.gz)"
cp "$W/edgerelay" "$OUT/edgerelay"
go tool pprof -sample_index=inuse_space -top "$OUT/edgerelay" "$OUT/heap.pb.gz" 2>/dev/null | head -25
grep -c '"level":"ERROR"' "$W/log" || true
