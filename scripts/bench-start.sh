#!/usr/bin/env bash
# Start-up time (issue 10): from exec of the built edgerelay to its
# STARTTLS submission port accepting a connection, with the defaults: local
# spool, users file (bcrypt), self-signed certificate made at start.
# Each run starts on the same data directory (the first run creates the
# spool), is polled every 0.2 ms with a TCP connect on loopback, then
# stopped with SIGTERM. Prints every run and the median.
#   scripts/bench-start.sh [RUNS]        (default 11)
# Env: RELAY_ENV (extra VAR=value settings), GODEBUG_INIT=1 (also print
# the Go runtime's package init times of the first run: GODEBUG=inittrace=1).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-11}
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
go build -o "$W/edgerelay" .
echo "start@bench.test:$(printf 'start-secret\n' | "$W/edgerelay" hash-password)" >"$W/users"
PORT=${PORT:-25587}
W="$W" PORT="$PORT" RUNS="$RUNS" python3 - <<'EOF'
import os, socket, subprocess, time, statistics, signal
w, port, runs = os.environ["W"], int(os.environ["PORT"]), int(os.environ["RUNS"])
env = dict(os.environ, RELAY_DATA_DIR=w + "/data", RELAY_AUTH_FILE=w + "/users",
           RELAY_HOSTNAME="relay.bench", RELAY_SUBMISSION_ADDR="127.0.0.1:%d" % port,
           RELAY_SUBMISSIONS_ADDR="127.0.0.1:%d" % (port + 1), RELAY_HTTP_ADDR="127.0.0.1:%d" % (port + 2),
           RELAY_GATEWAY="127.0.0.1:9", RELAY_GATEWAY_TLS="none", RELAY_LOG_LEVEL="info")
for kv in os.environ.get("RELAY_ENV", "").split():
    k, v = kv.split("=", 1)
    env[k] = v
times = []
for i in range(runs):
    if i == 0 and os.environ.get("GODEBUG_INIT"):
        env["GODEBUG"] = "inittrace=1"
    else:
        env.pop("GODEBUG", None)
    log = open("%s/log%d" % (w, i), "w")
    t0 = time.monotonic()
    p = subprocess.Popen([w + "/edgerelay"], env=env, stdout=log, stderr=log)
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            break
        except OSError:
            if p.poll() is not None:
                raise SystemExit("edgerelay exited: see " + log.name)
            time.sleep(0.0002)
        finally:
            s.close()
    ms = (time.monotonic() - t0) * 1000
    times.append(ms)
    p.send_signal(signal.SIGTERM)
    p.wait()
    print("run %d: %.1f ms" % (i + 1, ms))
    if i == 0 and os.environ.get("GODEBUG_INIT"):
        os.system("grep -h '^init ' %s/log0 | sort -t@ -k2 | awk '{print}' | sort -k5 -n -r | head -15" % w)
print("median %.1f ms (min %.1f, max %.1f) over %d runs" % (statistics.median(times), min(times), max(times), runs))
EOF
