#!/usr/bin/python3
"""Check an edgerelay delivery status notification with independent parsers.

Usage: check-ndr-flufl.py REPORT.eml [--failed ADDR ...] [--delayed ADDR ...]

1. Python's email package parses the report without defects, as a
   multipart/report; report-type=delivery-status (RFC 6522) whose second
   part is message/delivery-status (RFC 3464) with one field group per
   recipient after the per-message group.
2. flufl.bounce (Debian: python3-flufl.bounce, the bounce detector of GNU
   Mailman) recognises exactly the --failed addresses as permanent failures
   and the --delayed addresses as temporary ones.

Exit status 0 when all checks pass, 1 with a reason otherwise, 2 when
flufl.bounce is not installed. Run with Debian's /usr/bin/python3.
"""

import argparse
import email
import email.policy
import sys

try:
    from flufl.bounce import all_failures, scan_message
except ImportError:  # pragma: no cover - reported to the caller
    print("flufl.bounce is not installed (apt-get install python3-flufl.bounce)", file=sys.stderr)
    sys.exit(2)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check_structure(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        if part.defects:
            fail("%s has defects: %r" % (part.get_content_type(), part.defects))
    if msg.get_content_type() != "multipart/report":
        fail("content type is %s" % msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        fail("report-type is %r" % msg.get_param("report-type"))
    parts = msg.get_payload()
    if len(parts) < 2:
        fail("%d parts" % len(parts))
    if parts[0].get_content_type() != "text/plain":
        fail("first part is %s" % parts[0].get_content_type())
    status = parts[1]
    if status.get_content_type() != "message/delivery-status":
        fail("second part is %s" % status.get_content_type())
    groups = status.get_payload()
    if len(groups) < 2 or not groups[0].get("Reporting-MTA", "").startswith("dns;"):
        fail("delivery-status groups: %r" % [dict(g) for g in groups])
    for g in groups[1:]:
        for field in ("Final-Recipient", "Action", "Status"):
            if not g.get(field):
                fail("recipient group without %s: %r" % (field, dict(g)))
    if msg["Auto-Submitted"] != "auto-replied":
        fail("Auto-Submitted is %r" % msg["Auto-Submitted"])
    return [(g["Final-Recipient"], g["Action"], g["Status"]) for g in groups[1:]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--failed", nargs="*", default=[])
    ap.add_argument("--delayed", nargs="*", default=[])
    args = ap.parse_args()
    with open(args.report, "rb") as f:
        raw = f.read()

    recipients = check_structure(raw)

    # flufl.bounce works on the classic (compat32) message objects.
    msg = email.message_from_bytes(raw)
    temporary, permanent = all_failures(msg)
    temporary = {a.decode() for a in temporary}
    permanent = {a.decode() for a in permanent}
    if permanent != set(args.failed):
        fail("flufl.bounce permanent failures %s, want %s" % (sorted(permanent), sorted(args.failed)))
    if temporary != set(args.delayed):
        fail("flufl.bounce temporary failures %s, want %s" % (sorted(temporary), sorted(args.delayed)))
    scanned = {a.decode() for a in scan_message(msg)}
    if scanned != set(args.failed):
        fail("flufl.bounce scan_message %s, want %s" % (sorted(scanned), sorted(args.failed)))
    print("ok: %s; flufl.bounce permanent=%s temporary=%s" % (recipients, sorted(permanent), sorted(temporary)))


if __name__ == "__main__":
    main()
