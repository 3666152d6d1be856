#!/usr/bin/env python3
"""Draws delivery latency percentiles against offered load as an SVG.

Reads `duet-load --json` report lines (one JSON object per line) from the
files given, keeps the `fanout` runs, and writes the chart to stdout. Pure
standard library: no plotting package needed.
"""
import json
import math
import sys

runs = []
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        # The sweep of rooms of 4 (other room sizes measure other things).
        if r.get("scenario") != "fanout" or r["params"].get("room_size") != 4:
            continue
        kind = "Yjs" if r["params"].get("yjs") else "JSON"
        runs.append((kind, r["offered_deliveries_per_sec"], r["deliveries_per_sec"], r["latency"]))

# A load run more than once is drawn by its median run (by p99).
by_point = {}
for run in runs:
    by_point.setdefault((run[0], run[1]), []).append(run)
runs = []
for same in by_point.values():
    same.sort(key=lambda run: run[3]["p99_ms"])
    runs.append(same[(len(same) - 1) // 2])

W, H, L, R, T, B = 720, 420, 70, 150, 40, 50
xs = [o for _, o, _, _ in runs] or [1]
ys = [lat[k] for _, _, _, lat in runs for k in ("p50_ms", "p99_ms")] or [1]
xmax = max(xs) * 1.1
ymin, ymax = 0.5, max(ys) * 2
def X(v): return L + (W - L - R) * v / xmax
def Y(v): return T + (H - T - B) * (1 - (math.log10(max(v, ymin)) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)))

out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15">Duet fan-out, 1 000 rooms × 4: delivery latency vs offered load</text>']
for v in [1, 10, 100, 1000, 10000]:
    if ymin <= v <= ymax:
        out.append(f'<line x1="{L}" x2="{W-R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L-6}" y="{Y(v)+4:.1f}" text-anchor="end">{v} ms</text>')
step = 10 ** math.floor(math.log10(xmax / 2))
v = 0
while v <= xmax:
    out.append(f'<line y1="{T}" y2="{H-B}" x1="{X(v):.1f}" x2="{X(v):.1f}" stroke="#eee"/>')
    out.append(f'<text x="{X(v):.1f}" y="{H-B+16}" text-anchor="middle">{int(v):,}</text>')
    v += step
out.append(f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">offered deliveries per second</text>')
colors = {("JSON", "p50_ms"): "#4363d8", ("JSON", "p99_ms"): "#e6194b", ("Yjs", "p50_ms"): "#3cb44b", ("Yjs", "p99_ms"): "#f58231"}
legend_y = T + 10
for (kind, key), color in colors.items():
    pts = sorted((o, lat[key]) for k, o, _, lat in runs if k == kind)
    if not pts:
        continue
    path = " ".join(f"{'M' if i == 0 else 'L'}{X(o):.1f},{Y(l):.1f}" for i, (o, l) in enumerate(pts))
    out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
    for o, l in pts:
        out.append(f'<circle cx="{X(o):.1f}" cy="{Y(l):.1f}" r="3" fill="{color}"/>')
    out.append(f'<line x1="{W-R+15}" x2="{W-R+35}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>')
    out.append(f'<text x="{W-R+40}" y="{legend_y+4}">{kind} {key.replace("_ms", "")}</text>')
    legend_y += 18
out.append(f'<line x1="{L}" x2="{W-R}" y1="{Y(50):.1f}" y2="{Y(50):.1f}" stroke="#999" stroke-dasharray="4 3"/>')
out.append(f'<text x="{W-R+15}" y="{Y(50)+4:.1f}" fill="#666">target p99 50 ms</text>')
out.append("</svg>")
print("\n".join(out))
