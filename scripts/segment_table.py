#!/usr/bin/env python3
"""Rows of docs/results.md's segmentation-model table (mean ± sd over seeds) from the runs of
`har segment train` (runs/segmenter/<variant>-s<seed>/report.json: the test report written at
the end of training) and of `har segment eval --segmenter ... --global-window 256 --out
runs/segmenter/window256/<variant>-s<seed>.json`."""
import json, os, statistics as st, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "runs/segmenter"
ROWS = [
    ("conv + local attention + GRU + global attention (S10), global unbounded", "full", None),
    ("S10, global attention over the last 256 steps", "full", "window256"),
    ("without local attention, global unbounded", "no-local", None),
    ("without local attention, global over the last 256 steps", "no-local", "window256"),
    ("without global attention", "no-global", None),
    ("conv + GRU only", "neither", None),
]


def ms(v):
    return f"{st.mean(v):.2f} ± {st.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


for name, variant, window in ROWS:
    reports, seconds = [], []
    for seed in (1, 2, 3):
        run = f"{ROOT}/{variant}-s{seed}"
        path = f"{ROOT}/{window}/{variant}-s{seed}.json" if window else f"{run}/report.json"
        if not os.path.exists(path):
            continue
        reports.append(json.load(open(path)))
        seconds.append(json.load(open(f"{run}/segmenter.json"))["provenance"]["seconds"])
    if not reports:
        continue
    col = lambda f: [f(r) for r in reports]
    print(
        f"| {name} | {len(reports)} | {ms(col(lambda r: r['frame_accuracy']))} | "
        f"{ms(col(lambda r: r['edit']))} | {ms(col(lambda r: r['f1'][0]))} | "
        f"{ms(col(lambda r: r['f1'][1]))} | {ms(col(lambda r: r['f1'][2]))} | "
        f"{', '.join(str(r['boundary_segments'][1]) for r in reports)} | "
        f"{ms(col(lambda r: r['boundary_error_s'][0]))} / {ms(col(lambda r: r['boundary_error_s'][1]))} | "
        f"{st.mean(seconds):.0f} |"
    )
