#!/usr/bin/env python3
"""Turns `duet-load --json` report lines into the Markdown rows of
docs/BENCHMARKS.md (one row per run)."""
import json
import sys

def ms(v):
    return f"{v:,.1f} ms" if v < 1000 else f"{v/1000:,.1f} s"

print("| scenario | offered | achieved | latency p50 / p99 | ack p99 | lost | server CPU | server RSS |")
print("|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        p, sc = r["params"], r["scenario"]
        srv = r.get("server") or {}
        cpu = f"{srv.get('cores_run', 0):.2f} cores"
        rss = f"{srv.get('rss_peak_kib', 0)/1024:,.0f} MiB"
        if sc == "connections":
            idle = r.get("idle") or {}
            name = f"connections, {p['sockets']:,} sockets in rooms of {p['room_size']}"
            print(f"| {name} | — | {r['joins_per_sec']:,.0f} joins/s | join p50 {ms(r['join_latency']['p50_ms'])} / p99 {ms(r['join_latency']['p99_ms'])} | — | {r['failed']} failed | setup {srv.get('cpu_secs_setup', 0):.1f} s CPU | **{idle.get('rss_per_socket_bytes', 0)/1024:.1f} KiB per socket** after {idle.get('idle_secs', 0):.0f} s idle |")
        elif sc in ("fanout", "bigroom"):
            kind = "Yjs" if p.get("yjs") else "JSON"
            if sc == "fanout":
                name = f"fan-out {kind}, {p['rooms']:,} rooms × {p['room_size']}, {p['rate']:g} edits/s per room"
            else:
                name = f"big room {kind}, {p['members']:,} members, {p['rate']:g} edits/s"
            print(f"| {name} | {r['offered_deliveries_per_sec']:,.0f} deliveries/s | {r['deliveries_per_sec']:,.0f}/s | {ms(r['latency']['p50_ms'])} / {ms(r['latency']['p99_ms'])} | {ms(r['ack_latency']['p99_ms'])} | {r['lost']:,} | {cpu} | {rss} |")
        elif sc == "reconnect-storm":
            name = f"reconnect storm, {p['sockets']:,} sockets in rooms of {p['room_size']}, server restarted"
            k, h = r.get("kill_to_all_rejoined_secs"), r.get("healthy_to_all_rejoined_secs")
            done = f"all {r['rejoined']:,} rejoined" if k is not None else f"{r['rejoined']:,} of {r['joined_before']:,} rejoined"
            when = f"{k:.1f} s after SIGTERM, {h:.1f} s after healthy" if k is not None else "—"
            print(f"| {name} | — | {done}, {r['rejoins_per_sec']:,.0f} rejoins/s | {when} | — | {r['joined_before'] - r['joined_at_end']:,} not rejoined | — | — |")
        elif sc == "churn":
            name = f"presence churn, {p['rooms']} rooms × {p['rate']:g} join+leave/s"
            lat = r["presence_latency"]
            print(f"| {name} | {p['rooms']*p['rate']:,.0f} joins/s | {r['joins_ok']/p['duration_secs']:,.0f} joins/s | diff {ms(lat['p50_ms'])} / {ms(lat['p99_ms'])} | — | {r['presence_lost']:,} diffs | {cpu} | {rss} |")
