#!/usr/bin/env python3
"""Medians per cell of a scripts/bench-compare.sh run, edgerelay against
Postfix, and their ratio (edgerelay / Postfix msgs/s; Postfix / edgerelay
for p99 and CPU per message, so > 1 is edgerelay's advantage everywhere).

Usage: scripts/bench-table.py FILE.jsonl
"""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows:
    srv, port = r["server"].rsplit("-", 1)
    cells.setdefault((port, r["c"], r["per_conn"]), {}).setdefault(srv, []).append(r)


def med(rs, k):
    return statistics.median(float(r[k]) for r in rs)


print("| port | c | msgs/conn | runs | edgerelay msgs/s | Postfix msgs/s | ratio | edgerelay p50 / p99 ms "
      "| Postfix p50 / p99 ms | edgerelay CPU ms/msg | Postfix CPU ms/msg | edgerelay RSS MiB | Postfix PSS MiB "
      "| delivered/sent (edgerelay) |")
print("|" + "---|" * 14)
for (port, c, pc), by in sorted(cells.items(), key=lambda kv: (kv[0][0] != "587", kv[0][0], kv[0][1], -kv[0][2])):
    e, p = by.get("edgerelay", []), by.get("postfix", [])
    if not e or not p:
        continue
    em, pm = med(e, "msgs_per_s"), med(p, "msgs_per_s")
    dl = sum(int(r["sink_delivered"]) for r in e)
    st = sum(int(r["sent"]) for r in e)
    print(f"| {port} | {c} | {pc} | {len(e)} | {em:.0f} | {pm:.0f} | **{em / pm:.2f}×** "
          f"| {med(e, 'p50_ms'):.1f} / {med(e, 'p99_ms'):.1f} | {med(p, 'p50_ms'):.1f} / {med(p, 'p99_ms'):.1f} "
          f"| {med(e, 'cpu_ms_per_msg'):.2f} | {med(p, 'cpu_ms_per_msg'):.2f} "
          f"| {med(e, 'rss_max_kb') / 1024:.0f} | {med(p, 'pss_max_kb') / 1024:.0f} | {dl}/{st} |")
