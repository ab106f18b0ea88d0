#!/usr/bin/env bash
# Trains every architecture's student alone with one recipe on one dataset, three seeds, and
# evaluates each on the test split with every modality and with each one missing: the runs
# behind docs/results.md. Nothing is tuned on the test split: the recipe is `har train`'s
# default, epochs are chosen on the validation subjects (carved from the training subjects).
#
# usage: scripts/compare_architectures.sh OUT_DIR NAME [har train options...]
#   e.g. scripts/compare_architectures.sh runs hapt6 --dataset data/hapt --classes 1,2,3,4,5,6 --epochs 12
#        scripts/compare_architectures.sh runs bm --dataset data/basic_motions --window 100 --stride 100 --val-fraction 0 --epochs 30
# Then: python3 scripts/results_table.py OUT_DIR NAME
# ARCHS and SEEDS (environment) choose the architectures and seeds [all eight; 1 2 3]; an
# architecture named `NAME-teacher` (e.g. `dmft-teacher`) trains that architecture's teacher
# shape instead of its student.
set -euo pipefail
out=${1:?usage: compare_architectures.sh OUT_DIR NAME [har train options...]}
name=${2:?usage: compare_architectures.sh OUT_DIR NAME [har train options...]}
shift 2
har=${HAR:-target/release/har}
dataset=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--dataset" ] && dataset=${args[$((i + 1))]}
done
[ -n "$dataset" ] || { echo "give --dataset" >&2; exit 2; }
mkdir -p "$out"
for arch in ${ARCHS:-dmft mvf transformer lstm gru lstm-patches gru-patches cmsa}; do
  for seed in ${SEEDS:-1 2 3}; do
    run="$out/$name-$arch-s$seed"
    [ -f "$run/eval-all.json" ] && continue
    shape=(--student --arch "$arch")
    [ "${arch%-teacher}" != "$arch" ] && shape=(--arch "${arch%-teacher}")
    "$har" train "$@" "${shape[@]}" --seed "$seed" --out "$run" > "$run.train.log" 2>&1
    "$har" eval --model "$run" --dataset "$dataset" --json > "$run/eval-all.json"
    python3 - "$run/model.json" <<'PY' | while read -r modality; do
import json, sys
for m in json.load(open(sys.argv[1]))["config"]["modalities"]:
    print(m["name"])
PY
      "$har" eval --model "$run" --dataset "$dataset" --json --drop "$modality" > "$run/eval-no-$modality.json"
    done
    echo "$name $arch seed $seed: $(grep -o 'best epoch.*' "$run.train.log")"
  done
done
