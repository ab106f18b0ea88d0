#!/usr/bin/env python3
"""Rows of docs/results.md's scene tables (mean ± sd over seeds) from
`har scene eval --out runs/scene/<variant>-s<seed>/<split>.json`."""
import json, os, statistics as st, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "runs/scene"
SPLIT = sys.argv[2] if len(sys.argv) > 2 else "test"
VARIANTS = [
    ("all sensors", "ctx", "noctx"),
    ("gyroscope dead (acc only)", "acc-ctx", "acc-noctx"),
]


def ms(v):
    return f"{st.mean(v):.2f} ± {st.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


def reports(variant):
    out = []
    for seed in (1, 2, 3):
        path = f"{ROOT}/{variant}-s{seed}/{SPLIT}.json"
        if os.path.exists(path):
            out.append(json.load(open(path)))
    return out


print("| features | seeds | the window classifier alone | scene model without context | scene model with cross-subject context |")
print("|---|---|---|---|---|")
for name, ctx, noctx in VARIANTS:
    c, n = reports(ctx), reports(noctx)
    if not c:
        continue
    print(
        f"| {name} | {len(c)} | {ms([r['classifier_accuracy'] for r in c])} | "
        f"{ms([r['member_accuracy'] for r in n])} | {ms([r['member_accuracy'] for r in c])} |"
    )
print()
print("| features | model | decoding | example-F1 | subset accuracy | mAP |")
print("|---|---|---|---|---|---|")
for name, ctx, noctx in VARIANTS:
    for label, variant in (("with context", ctx), ("without context", noctx)):
        rs = reports(variant)
        if not rs:
            continue
        methods = [s["method"] for s in rs[0]["sets"]]
        for i, method in enumerate(methods):
            if method.startswith("independent"):
                shown = "independent labels, thresholded (" + ", ".join(
                    sorted({r["sets"][i]["method"].split("> ")[1] for r in rs})) + ")"
            else:
                shown = method
            sets = [r["sets"][i] for r in rs]
            print(
                f"| {name} | {label} | {shown} | {ms([s['example_f1'] for s in sets])} | "
                f"{ms([s['subset_accuracy'] for s in sets])} | {ms([s['map'] for s in sets])} |"
            )
