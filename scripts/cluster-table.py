#!/usr/bin/env python3
"""Summarises target/cluster-bench.jsonl (scripts/cluster-bench.sh): one node
against three, per scenario, as a Markdown table for docs/BENCHMARKS.md."""
import json
import sys


def pct(p, key):
    v = (p or {}).get(key + "_ms")
    return "" if v is None else f"{v:.1f}"


def row(r):
    if r.get("scenario") == "kill_to_leave":
        return f"| kill → leave seen | 3 | {r['kills']} kills: median {r['median_ms']} ms (min {r['min_ms']}, max {r['max_ms']}) | | | |"
    servers = r.get("servers") or []
    cpu = sum(s.get("cpu_secs_run", 0) for s in servers)
    deliveries = r.get("deliveries_unique") or 0
    cpu_per = f"{cpu / deliveries * 1e6:.1f} µs" if deliveries else ""
    lat = r.get("latency_cross_node") or r.get("latency") or {}
    ack = r.get("ack_latency") or {}
    idle = r.get("idle") or {}
    label = r["label"]
    if label == "sockets":
        per_node = ", ".join(
            f"node{n.get('node', 0) + 1}: {n.get('sockets')} sockets, {n.get('rss_per_socket_bytes', 0):.0f} B/socket"
            for n in (r.get("idle_per_node") or [])
        )
        return f"| {label} | {r['nodes']} | joined {r.get('joined')} of {r.get('clients')}, {r.get('joins_per_sec', 0):.0f} joins/s; {per_node} | | | |"
    return (
        f"| {label} | {r['nodes']} | {r.get('achieved_per_sec', 0):.0f} edits/s, "
        f"{r.get('deliveries_per_sec', 0):.0f} deliveries/s, lost {r.get('lost')}, dup {r.get('duplicates')} "
        f"| {pct(lat, 'p50')} / {pct(lat, 'p99')} | {pct(ack, 'p50')} / {pct(ack, 'p99')} | {cpu_per} |"
    )


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    print("| run | nodes | throughput | delivery p50 / p99 ms (cross-node when 3) | ack p50 / p99 ms | server CPU per delivery |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(row(r))


main()
