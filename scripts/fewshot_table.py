#!/usr/bin/env python3
"""Averages `har fewshot eval --out` reports over several runs (e.g. the leave-one-class-out
folds of scripts/fewshot_basic_motions.sh): per K and method, the mean of each metric over the
runs, with the runs' 95 % intervals combined as sqrt(sum ci^2) / n.
Usage: scripts/fewshot_table.py REPORT.json [REPORT.json ...]"""
import json
import math
import sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
for path in sys.argv[1:]:
    for report in json.load(open(path)):
        k = report["settings"]["shots"]
        for m in report["methods"]:
            for metric in ("novel", "generalised_novel", "generalised_base", "base_drop"):
                rows[(k, m["method"])][metric].append(m[metric])
        rows[(k, "base alone")]["generalised_base"].append(report["base_alone"])

metrics = ("novel", "generalised_novel", "generalised_base", "base_drop")
print("| K | method | novel % | generalised: novel % | generalised: base % | base drop (points) |")
print("|---|---|---|---|---|---|")
for (k, method), values in sorted(rows.items(), key=lambda r: (r[0][0], r[0][1] == "base alone")):
    cells = []
    for metric in metrics:
        v = values.get(metric)
        if not v:
            cells.append("")
            continue
        mean = sum(x["mean"] for x in v) / len(v)
        ci = math.sqrt(sum(x["ci95"] ** 2 for x in v)) / len(v)
        cells.append(f"{mean:.2f} ± {ci:.2f}")
    print(f"| {k} | {method} | " + " | ".join(cells) + " |")
