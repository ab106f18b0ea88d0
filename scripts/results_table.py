"""Summarises scripts/compare_architectures.sh runs as the rows of docs/results.md: per
architecture, accuracy and macro-F1 (mean ± sd over seeds, sample sd), parameters, FLOPs per
window, training time, and accuracy with each modality missing.

usage: python3 scripts/results_table.py OUT_DIR NAME
"""
import glob
import json
import re
import statistics
import sys
from collections import defaultdict

out, name = sys.argv[1], sys.argv[2]
runs = defaultdict(list)
for path in sorted(glob.glob(f"{out}/{name}-*-s*/eval-all.json")):
    arch = re.match(rf".*/{re.escape(name)}-(.+)-s\d+/eval-all.json", path).group(1)
    run = path.rsplit("/", 1)[0]
    evaluation = json.load(open(path))
    card = json.load(open(f"{run}/model.json"))
    missing = {}
    for other in glob.glob(f"{run}/eval-no-*.json"):
        modality = other.rsplit("eval-no-", 1)[1][: -len(".json")]
        missing[modality] = json.load(open(other))["accuracy"]
    runs[arch].append((evaluation, card, missing))


def mean_sd(values):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * sd:.2f}"


print("| architecture | seeds | accuracy % | macro-F1 % | parameters | FLOPs / window | train s (median) | accuracy % without " + ", ".join(sorted(next(iter(runs.values()))[0][2])) + " |")
print("|---|---|---|---|---|---|---|---|")
for arch, rows in runs.items():
    accuracy = mean_sd([e["accuracy"] for e, _, _ in rows])
    f1 = mean_sd([e["macro_f1"] for e, _, _ in rows])
    card = rows[0][1]
    seconds = statistics.median(c["provenance"]["seconds"] for _, c, _ in rows)
    modalities = sorted(rows[0][2])
    without = " / ".join(mean_sd([m[name] for _, _, m in rows]) for name in modalities)
    print(f"| {arch} | {len(rows)} | {accuracy} | {f1} | {card['parameters']:,} | {card['flops_per_window']:,} | {seconds:.0f} | {without} |")
