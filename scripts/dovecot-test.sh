#!/bin/bash
# dovecot-test.sh — serve edgerelay's bounce Maildir with a real, private
# Dovecot over IMAP on 127.0.0.1 and check that every report in it can be
# listed, fetched and parsed as a multipart/report (RFC 6522).
#
#   scripts/dovecot-test.sh MAILDIR    check the reports in MAILDIR
#   scripts/dovecot-test.sh            run the Go test that writes reports
#                                      into a fresh store and calls this
#                                      script on it (EDGERELAY_DOVECOT=1)
#
# Environment: DOVECOT_PORT (default 10143), EXPECT_COUNT (number of
# messages the mailbox must hold; unchecked when empty).
#
# Needs: dovecot-imapd (Debian), /usr/bin/python3, root (Dovecot's master
# runs as root; mail processes run as uid 65534, which must be able to
# read and write MAILDIR: the Go test chowns it). Dovecot writes its index
# and UID list into MAILDIR itself, as a real deployment would; edgerelay
# tolerates exactly those files in its store.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	cd "$(dirname "$0")/.."
	EDGERELAY_DOVECOT=1 exec go test -count=1 -run 'TestDovecotServesBounceStore' -v ./outbound/
fi

MAILDIR=$(cd "$1" && pwd)
PORT=${DOVECOT_PORT:-10143}
command -v dovecot >/dev/null || PATH=$PATH:/usr/sbin
command -v dovecot >/dev/null || { echo "dovecot not installed (apt-get install dovecot-imapd)" >&2; exit 2; }

W=$(mktemp -d /tmp/edgerelay-dovecot.XXXXXX)
chmod 0755 "$W" # the auth process (user dovecot) reads the passwd file
PID=
cleanup() {
	if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
		kill "$PID"
		wait "$PID" 2>/dev/null || true # the master takes about a second to stop its children
	fi
	rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/run" "$W/state" "$W/home"
chown 65534:65534 "$W/home"
echo 'bounce:{PLAIN}bouncepw' >"$W/passwd"
cat >"$W/dovecot.conf" <<EOF
instance_name = edgerelay-dovecot-test
base_dir = $W/run
state_dir = $W/state
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = $W/dovecot.log
mail_location = maildir:$MAILDIR
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = $W/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$W/home
}
EOF

dovecot -F -c "$W/dovecot.conf" >"$W/dovecot.out" 2>&1 &
PID=$!
banner() {
	local L=
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" && IFS= read -r -t 2 L <&3
	exec 3>&-
	[[ $L == "* OK"* ]]
}
for _ in $(seq 100); do
	banner 2>/dev/null && break
	kill -0 "$PID" 2>/dev/null || { cat "$W/dovecot.out" "$W/dovecot.log" >&2; exit 1; }
	sleep 0.1
done
banner 2>/dev/null || { echo "dovecot did not answer on 127.0.0.1:$PORT" >&2; cat "$W/dovecot.log" >&2; exit 1; }

if ! PORT=$PORT EXPECT_COUNT=${EXPECT_COUNT:-} /usr/bin/python3 - <<'EOF'; then
import email, email.policy, imaplib, os, sys

M = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
M.login("bounce", "bouncepw")
typ, data = M.select("INBOX")
if typ != "OK":
    sys.exit("SELECT INBOX: %s %s" % (typ, data))
uids = M.uid("SEARCH", None, "ALL")[1][0].split()
want = os.environ.get("EXPECT_COUNT")
if want and len(uids) != int(want):
    sys.exit("INBOX holds %d messages, want %s" % (len(uids), want))
for uid in uids:
    typ, data = M.uid("FETCH", uid, "(BODY.PEEK[])")  # PEEK: leaves \Seen off
    if typ != "OK" or not data or not isinstance(data[0], tuple):
        sys.exit("FETCH %s: %s %r" % (uid.decode(), typ, data))
    msg = email.message_from_bytes(data[0][1], policy=email.policy.default)
    if msg.get_content_type() != "multipart/report" or msg.get_param("report-type") != "delivery-status":
        sys.exit("message %s is %s" % (uid.decode(), msg.get_content_type()))
    status = [p for p in msg.walk() if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")]
    if not status:
        sys.exit("message %s has no delivery-status part" % uid.decode())
    finals = [g["Final-Recipient"] for g in status[0].get_payload()[1:]] if status[0].is_multipart() else []
    print("fetched uid=%s message-id=%s subject=%r final-recipients=%s" % (uid.decode(), msg["Message-ID"], msg["Subject"], finals))
M.logout()
EOF
	echo "--- dovecot log" >&2
	cat "$W/dovecot.log" >&2
	exit 1
fi
echo "dovecot-test: ok"
