#!/usr/bin/env bash
# Quick start: build edgerelay, make a users file with one user, and run it on
# its embedded defaults (local spool, users file, Maildir bounce store) on high
# ports, relaying to a development sink that prints every delivered message.
# No root needed. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
QS=${QUICKSTART_DIR:-./quickstart}
USER_ADDR=${QUICKSTART_USER:-you@example.com}
USER_PW=${QUICKSTART_PASSWORD:-change-me}
mkdir -p "$QS/data" "$QS/bin"
go build -o "$QS/bin/edgerelay" .
go build -o "$QS/bin/sink" ./tools/sink
if [ ! -s "$QS/data/users" ]; then
  echo "$USER_ADDR:$(printf '%s\n' "$USER_PW" | "$QS/bin/edgerelay" hash-password)" > "$QS/data/users"
fi
"$QS/bin/sink" -addr 127.0.0.1:2525 -dir "$QS/sink" &
SINK=$!
trap 'kill $SINK 2>/dev/null' EXIT
cat <<MSG

  edgerelay is starting: STARTTLS submission on 127.0.0.1:10587, implicit TLS on 127.0.0.1:10465.
  User $USER_ADDR, password $USER_PW (in $QS/data/users).
  Send a first message from another terminal:

    printf 'From: $USER_ADDR\r\nTo: friend@example.net\r\nSubject: hello\r\n\r\nMy first message through edgerelay.\r\n' |
      curl --ssl-reqd -k smtp://127.0.0.1:10587/laptop -u '$USER_ADDR:$USER_PW' \\
        --mail-from $USER_ADDR --mail-rcpt friend@example.net -T -

  or:  swaks -s 127.0.0.1 -p 10587 --tls -a PLAIN -au $USER_ADDR -ap '$USER_PW' -f $USER_ADDR -t friend@example.net

MSG
RELAY_DATA_DIR="$QS/data" \
RELAY_HOSTNAME=${RELAY_HOSTNAME:-relay.localhost} \
RELAY_SUBMISSION_ADDR=127.0.0.1:10587 \
RELAY_SUBMISSIONS_ADDR=127.0.0.1:10465 \
RELAY_HTTP_ADDR=127.0.0.1:18080 \
RELAY_GATEWAY=127.0.0.1:2525 \
RELAY_GATEWAY_TLS=none \
  "$QS/bin/edgerelay"
