#!/usr/bin/env python3
"""Averages `har fewshot eval --out` reports over several runs: per K and method, the mean of
each metric over the runs, with
- the runs' 95 % intervals combined as sqrt(sum ci^2) / n (default: runs that are parts of one
  evaluation, e.g. the leave-one-class-out folds of scripts/fewshot_basic_motions.sh), or
- `--seeds`: the standard deviation over the runs (runs that repeat one evaluation with other
  seeds, e.g. backbones trained with seeds 1-3).
Usage: scripts/fewshot_table.py [--seeds] REPORT.json [REPORT.json ...]"""
import json
import math
import sys
from collections import defaultdict

seeds = "--seeds" in sys.argv
paths = [a for a in sys.argv[1:] if a != "--seeds"]
rows = defaultdict(lambda: defaultdict(list))
for path in paths:
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
        if seeds:
            ci = math.sqrt(sum((x["mean"] - mean) ** 2 for x in v) / max(len(v) - 1, 1))
        else:
            ci = math.sqrt(sum(x["ci95"] ** 2 for x in v)) / len(v)
        cells.append(f"{mean:.2f} ± {ci:.2f}")
    print(f"| {k} | {method} | " + " | ".join(cells) + " |")
