#!/usr/bin/env python3
"""The compression table of docs/results.md from scripts/compress_compare.sh's runs.

usage: python3 scripts/compress_table.py OUT_DIR [SOURCE_MODEL]
One row per (ratio, fine-tuning, f32 / int8): test accuracy and macro-F1 as mean ± sd over
the seeds run, parameters, bytes of model.safetensors, FLOPs per window.
"""
import json
import os
import re
import statistics
import sys

out = sys.argv[1]
source = sys.argv[2] if len(sys.argv) > 2 else "models/hapt-student"


def load(run):
    card = json.load(open(os.path.join(run, "model.json")))
    ev = json.load(open(os.path.join(run, "eval-test.json")))
    size = os.path.getsize(os.path.join(run, "model.safetensors"))
    return ev["accuracy"], ev["macro_f1"], card["parameters"], size, card["flops_per_window"]


def fmt(values):
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


groups = {}
pattern = re.compile(r"^(?:r(?P<ratio>[0-9.]+)-(?P<kind>none|data-free|real)(?:-s\d+)?|unpruned)(?P<int8>-int8)?(?:-s\d+)?$")
for name in sorted(os.listdir(out)):
    run = os.path.join(out, name)
    m = pattern.match(name)
    if not m or not os.path.isfile(os.path.join(run, "eval-test.json")):
        continue
    ratio = float(m["ratio"]) if m["ratio"] else 0.0
    kind = m["kind"] or "—"
    key = (ratio, kind, bool(m["int8"]))
    groups.setdefault(key, []).append(load(run))

base = load_source = None
card = json.load(open(os.path.join(source, "model.json")))
ev = json.load(open(os.path.join(source, "eval.json"))) if os.path.exists(os.path.join(source, "eval.json")) else None
print("| pruned | fine-tuning | weights | seeds | accuracy % | macro-F1 % | parameters | bytes on disk | FLOPs/window |")
print("|---|---|---|---|---|---|---|---|---|")
src_size = os.path.getsize(os.path.join(source, "model.safetensors"))
if ev:
    print(f"| 0 % | — (shipped student) | f32 | 1 | {100*ev['accuracy']:.2f} | {100*ev['macro_f1']:.2f} | {card['parameters']:,} | {src_size:,} | {card['flops_per_window']:,} |")
order = {"—": 0, "none": 1, "data-free": 2, "real": 3}
for (ratio, kind, int8) in sorted(groups, key=lambda k: (k[0], order[k[1]], k[2])):
    rows = groups[(ratio, kind, int8)]
    acc, f1, params, size, flops = zip(*rows)
    print(f"| {100*ratio:.0f} % | {kind} | {'int8' if int8 else 'f32'} | {len(rows)} | {fmt(acc)} | {fmt(f1)} | {params[0]:,} | {size[0]:,} | {flops[0]:,} |")
