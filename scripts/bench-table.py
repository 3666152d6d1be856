#!/usr/bin/env python3
"""Turns `duet-load --json` report lines into the Markdown rows of
docs/BENCHMARKS.md: one row per run, then, for the scenarios run more than
once, the medians over their runs and, for fan-out runs of JSON and Yjs
taking turns, the Yjs/JSON p99 ratio of each pair."""
import json
import statistics
import sys

def ms(v):
    return f"{v:,.1f} ms" if v < 1000 else f"{v/1000:,.1f} s"

def run_name(r):
    p = r["params"]
    kind = "Yjs" if p.get("yjs") else "JSON"
    if r["scenario"] == "fanout":
        return f"fan-out {kind}, {p['rooms']:,} rooms × {p['room_size']}, {p['rate']:g} edits/s per room"
    return f"big room {kind}, {p['members']:,} members, {p['rate']:g} edits/s"

# Fan-out and big-room runs by their parameters, for the medians below.
groups = {}
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
            name = run_name(r)
            groups.setdefault(json.dumps(p, sort_keys=True), []).append(r)
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

# Scenarios run more than once (in file order): medians over their runs.
repeated = {k: v for k, v in groups.items() if len(v) > 1}
if repeated:
    print()
    print("| scenario, runs | achieved (median) | latency p50 / p99 (medians) | p99 of each run | server CPU (median) |")
    print("|---|---|---|---|---|")
    for runs in repeated.values():
        med = lambda f: statistics.median(f(r) for r in runs)
        p99s = ", ".join(ms(r["latency"]["p99_ms"]) for r in runs)
        print(f"| {run_name(runs[0])}, {len(runs)} runs "
              f"| {med(lambda r: r['deliveries_per_sec']):,.0f}/s "
              f"| {ms(med(lambda r: r['latency']['p50_ms']))} / {ms(med(lambda r: r['latency']['p99_ms']))} "
              f"| {p99s} | {med(lambda r: (r.get('server') or {}).get('cores_run', 0)):.2f} cores |")
    # Yjs/JSON: each Yjs run against the JSON run just before it.
    for key, yjs in repeated.items():
        p = json.loads(key)
        if not p.get("yjs"):
            continue
        json_runs = repeated.get(json.dumps({**p, "yjs": False}, sort_keys=True), [])
        pairs = list(zip(json_runs, yjs))
        if pairs:
            ratios = [y["latency"]["p99_ms"] / j["latency"]["p99_ms"] for j, y in pairs]
            print()
            print(f"Yjs/JSON p99 at {p['rate']:g} edits/s per room, pair by pair: "
                  + ", ".join(f"{x:.2f}" for x in ratios)
                  + f"; median {statistics.median(ratios):.2f}")
