"""Summarises scripts/select_recipe.sh runs: per architecture and recipe, the kept weights'
accuracy and macro-F1 on the held-out fold of training subjects (mean ± sample sd over
folds), and the recipe chosen per architecture (highest mean macro-F1).

usage: python3 scripts/folds_table.py OUT_DIR NAME [RECIPES, default scripts/recipes/student.txt]
"""
import glob
import json
import re
import statistics
import sys
from collections import defaultdict

out, name = sys.argv[1], sys.argv[2]
scores = defaultdict(list)
for path in sorted(glob.glob(f"{out}/{name}-*-f*/model.json")):
    card = json.load(open(path))
    score = card["provenance"].get("validation_score")
    if score is None:
        sys.exit(f"{path}: no validation score (trained without --val-fold?)")
    key = re.match(rf".*/{re.escape(name)}-(.+)-f\d+/model.json", path).group(1)
    scores[key].append((score["accuracy"], score["macro_f1"], card["provenance"]["validation_fold"]))


def mean_sd(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


recipes = [line.split(":", 1)[0].strip() for line in open(sys.argv[3] if len(sys.argv) > 3 else "scripts/recipes/student.txt") if ":" in line and not line.lstrip().startswith("#")]
best = {}
rows = []
for key, folds in scores.items():
    recipe = next((r for r in sorted(recipes, key=len, reverse=True) if key.endswith("-" + r)), None)
    if recipe is None:
        sys.exit(f"{key}: recipe not in the recipes file")
    arch = key[: -len(recipe) - 1]
    f1_mean, f1 = mean_sd([f for _, f, _ in folds])
    _, accuracy = mean_sd([a for a, _, _ in folds])
    rows.append((arch, recipe, len(folds), accuracy, f1))
    if arch not in best or f1_mean > best[arch][1]:
        best[arch] = (recipe, f1_mean)
print("| architecture | recipe | folds | validation accuracy % | validation macro-F1 % | chosen |")
print("|---|---|---|---|---|---|")
for arch, recipe, n, accuracy, f1 in rows:
    chosen = "**chosen**" if best[arch][0] == recipe else ""
    print(f"| {arch} | {recipe} | {n} | {accuracy} | {f1} | {chosen} |")
