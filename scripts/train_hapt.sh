#!/usr/bin/env bash
# Reproduces the shipped HAPT models (models/hapt-teacher, models/hapt-student) and, with
# --ablations, the ablation table of docs/model.md (same recipe, other fusion stages, no
# distillation, each modality missing). Needs `har` built (HAR=target/debug/har for the dev
# build, whose numeric crates are optimised; the timings in docs/model.md are from it):
#   cargo build --release && scripts/train_hapt.sh [--ablations]
set -euo pipefail
cd "$(dirname "$0")/.."
har=${HAR:-target/release/har}
data=${DATA_DIR:-data}
[ -f "$data/hapt/dataset.json" ] || { "$har" data fetch hapt --data-dir "$data"; "$har" data import hapt --data-dir "$data"; }
classes=1,2,3,4,5,6
# All 21 training subjects for a fixed number of epochs; rotation of the phone's frame about its
# x axis (along the body) by up to ±45° and small jitter (docs/model.md, "Augmentation").
recipe="--val-fraction 0 --jitter 0.005 --rotate-axis x"
# Token inputs besides each patch's values: the spectral step and the window detail (the patch's
# values standardised per window and channel); a distilled student inherits them.
inputs="--spectral-tokens true --window-detail true"

"$har" train --dataset "$data/hapt" --classes $classes $recipe --rotate-deg 45 $inputs --epochs 25 --out models/hapt-teacher
"$har" distill --teacher models/hapt-teacher --dataset "$data/hapt" $recipe --rotate-deg 90 --epochs 25 --average-from 18 --out models/hapt-student
"$har" eval --model models/hapt-teacher --dataset "$data/hapt"
"$har" eval --model models/hapt-student --dataset "$data/hapt"

if [ "${1:-}" = "--ablations" ]; then
  out=${ABLATION_DIR:-target/ablations}
  mkdir -p "$out"
  "$har" train --dataset "$data/hapt" --classes $classes $recipe --rotate-deg 45 $inputs --epochs 25 --modality-layers 0 --joint-layers 4 --out "$out/teacher-early"
  "$har" train --dataset "$data/hapt" --classes $classes $recipe --rotate-deg 45 $inputs --epochs 25 --modality-layers 4 --joint-layers 0 --out "$out/teacher-late"
  "$har" train --dataset "$data/hapt" --classes $classes $recipe --rotate-deg 90 $inputs --epochs 25 --student --out "$out/student-no-distill"
  for m in models/hapt-teacher models/hapt-student "$out/teacher-early" "$out/teacher-late" "$out/student-no-distill"; do
    "$har" eval --model "$m" --dataset "$data/hapt" --json --png "$out/$(basename "$m").png" > "$out/$(basename "$m").json"
  done
  for m in models/hapt-teacher models/hapt-student; do
    for drop in acc gyro; do
      "$har" eval --model "$m" --dataset "$data/hapt" --drop $drop --json --png "$out/$(basename "$m")-no-$drop.png" > "$out/$(basename "$m")-no-$drop.json"
    done
  done
  python3 - "$out" <<'PY'
import json, sys, glob, os
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    d = json.load(open(f))
    print(f"{os.path.basename(f)[:-5]:<32} acc {d['accuracy']:.4f}  macro-F1 {d['macro_f1']:.4f}  FLOPs {d['flops_per_window']}")
PY
fi
