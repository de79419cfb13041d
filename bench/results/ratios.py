#!/usr/bin/env python3
"""Ratios of rpc to raw and to volo over several `rpc-bench --json` runs, each as
min / median / max across the runs (issue 20's targets: rpc x1 >= 0.9x raw QPS and
<= 1.15x raw CPU per 1k calls at every point; rpc >= 1.1x volo QPS with p99 <= volo's).

Usage: bench/results/ratios.py run1.json run2.json run3.json
"""
import json
import statistics
import sys


def rows_by_point(path):
    """{(payload, concurrency): {label: row}} for one run."""
    table = {}
    for row in json.load(open(path)):
        label = row["system"] if row["connections"] == 1 else f'{row["system"]} x{row["connections"]}'
        table.setdefault((row["payload"], row["concurrency"]), {})[label] = row
    return table


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def ratio(run, point, system, peer, field):
    rows = run.get(point, {})
    if system not in rows or peer not in rows or not rows[peer][field]:
        return None
    return rows[system][field] / rows[peer][field]


def main(paths):
    runs = [rows_by_point(p) for p in paths]
    points = sorted({point for run in runs for point in run})
    print(f"{len(runs)} runs; each cell: min / median / max over the runs\n")
    print("| payload | conc | rpc/raw QPS | rpc/raw CPU per 1k | rpc x4/raw QPS | rpc x4/raw CPU | rpc/volo QPS | rpc/volo p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for point in points:
        cells = [
            spread([ratio(r, point, "rpc", "raw", "qps") for r in runs]),
            spread([ratio(r, point, "rpc", "raw", "cpu_ms_per_1k") for r in runs]),
            spread([ratio(r, point, "rpc x4", "raw", "qps") for r in runs]),
            spread([ratio(r, point, "rpc x4", "raw", "cpu_ms_per_1k") for r in runs]),
            spread([ratio(r, point, "rpc", "volo", "qps") for r in runs]),
            spread([ratio(r, point, "rpc", "volo", "p99_us") for r in runs]),
        ]
        payload = f"{point[0] // 1024} KiB" if point[0] >= 1024 else f"{point[0]} B"
        print(f"| {payload} | {point[1]} | " + " | ".join(cells) + " |")
    print("\n| payload | conc | allocs/call client+server (rpc) | (raw) | (volo) |")
    print("|---|---|---|---|---|")
    for point in points:
        def allocs(system):
            rows = [r.get(point, {}).get(system) for r in runs]
            rows = [x for x in rows if x and "client_allocs_per_call" in x]
            if not rows:
                return "-"
            c = statistics.median(x["client_allocs_per_call"] for x in rows)
            s = statistics.median(x["server_allocs_per_call"] for x in rows)
            return f"{c:.2f} + {s:.2f}"
        payload = f"{point[0] // 1024} KiB" if point[0] >= 1024 else f"{point[0]} B"
        print(f"| {payload} | {point[1]} | {allocs('rpc')} | {allocs('raw')} | {allocs('volo')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
