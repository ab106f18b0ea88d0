#!/usr/bin/env bash
# Few-shot enrolment on UEA BasicMotions, leave one class out: for each of the 4 classes, a
# student trained on the other 3 (seed 1), its transfer fitted on its training windows
# (BasicMotions has no subject ids, so no held-out subjects), then 1-way episodes with the
# left-out class as the new one, support and queries from disjoint test recordings.
# Usage: HAR=target/debug/har scripts/fewshot_basic_motions.sh OUT_DIR
set -euo pipefail
HAR=${HAR:-target/debug/har}
OUT=${1:?output folder}
DATA=${DATA:-data/basic_motions}
mkdir -p "$OUT"
for left in 0 1 2 3; do
  keep=$(echo 0 1 2 3 | tr ' ' '\n' | grep -v "^$left$" | paste -sd, -)
  model="$OUT/without-$left"
  if [ ! -f "$model/model.json" ]; then
    "$HAR" train --student --dataset "$DATA" --classes "$keep" --window 100 --stride 100 \
      --val-fraction 0 --epochs 30 --seed 1 --out "$model" > "$model.train.log" 2>&1
  fi
  cp models/basic-motions-student/activity_graph.json "$model/"
  "$HAR" fewshot fit --model "$model" --dataset "$DATA" > "$model.fit.log" 2>&1
  "$HAR" fewshot eval --model "$model" --dataset "$DATA" --novel "$left" --ways 1 \
    --shots 1,5 --queries 10 --episodes 600 --by-recording --support-subjects 20 \
    --out "$OUT/without-$left.json" 2>/dev/null
done
