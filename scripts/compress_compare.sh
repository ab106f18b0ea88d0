#!/usr/bin/env bash
# Compression of the shipped HAPT student (issue 17, seed S3), the runs behind
# docs/results.md: for each pruning ratio, no fine-tuning, data-free fine-tuning and
# fine-tuning on the real training windows (the upper bound), each also as int8 (calibrated
# on synthetic windows), evaluated once on the test split. Seeds vary the synthesis and the
# fine-tuning.
#
# usage: scripts/compress_compare.sh OUT_DIR JOB...
#   JOB = RATIO:none | RATIO:data-free:SEED | RATIO:real:SEED | 0:int8:SEED
#   e.g. scripts/compress_compare.sh runs/compress 0.5:none 0.5:data-free:1 0.5:real:1
# Then: python3 scripts/compress_table.py OUT_DIR
# HAR (environment) is the har binary [target/release/har]; MODEL the source model
# [models/hapt-student, which carries its activation_stats.json]; DATASET [data/hapt];
# SYNTH_WINDOWS / SYNTH_STEPS the data-free synthesis [1024 / 100]; REAL_EPOCHS the
# fine-tuning epochs on the real windows [10: 1,120 steps over 7,143 windows, more steps
# than the data-free runs' 30 epochs of 1,024 windows (480)]; WIDTH narrows the residual
# width too (`--width`; runs named rRATIO-wWIDTH-…, no int8: a narrower model needs its own
# feature statistics for data-free calibration).
set -euo pipefail
out=${1:?usage: compress_compare.sh OUT_DIR JOB...}
shift
har=${HAR:-target/release/har}
model=${MODEL:-models/hapt-student}
dataset=${DATASET:-data/hapt}
mkdir -p "$out"
for job in "$@"; do
  IFS=: read -r ratio kind seed <<< "$job"
  seed=${seed:-1}
  case $kind in
    none) name="r$ratio-none"; extra=() ;;
    data-free) name="r$ratio-data-free-s$seed"
      extra=(--data-free --synthetic-windows "${SYNTH_WINDOWS:-1024}" --synthesis-steps "${SYNTH_STEPS:-100}" --seed "$seed") ;;
    real) name="r$ratio-real-s$seed"
      extra=(--dataset "$dataset" --seed "$seed" --epochs "${REAL_EPOCHS:-10}") ;;
    int8) name="unpruned" ;;
    *) echo "unknown job $job" >&2; exit 2 ;;
  esac
  if [ -n "${WIDTH:-}" ]; then
    [ "$kind" = int8 ] && { echo "WIDTH: no int8 jobs" >&2; exit 2; }
    name="${name/r$ratio-/r$ratio-w$WIDTH-}"
    extra+=(--width "$WIDTH")
  fi
  run="$out/$name"
  if [ "$kind" != int8 ] && [ ! -f "$run/eval-test.json" ]; then
    rm -rf "$run"
    "$har" compress prune --model "$model" --ratio "$ratio" --out "$run" "${extra[@]}" > "$run.log" 2>&1
    "$har" eval --model "$run" --dataset "$dataset" --json > "$run/eval-test.json"
  fi
  src=$run
  [ "$kind" = int8 ] && src=$model
  if [ -n "${WIDTH:-}" ]; then echo "$job done"; continue; fi
  if [ ! -f "$run-int8-s$seed/eval-test.json" ]; then
    rm -rf "$run-int8-s$seed"
    "$har" compress quantize --model "$src" --data-free --calibration-windows 128 --seed "$seed" \
      --out "$run-int8-s$seed" > "$run-int8-s$seed.log" 2>&1
    "$har" eval --model "$run-int8-s$seed" --dataset "$dataset" --json > "$run-int8-s$seed/eval-test.json"
  fi
  echo "$job done"
done
