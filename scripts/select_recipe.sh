#!/usr/bin/env bash
# Chooses a recipe per architecture on leave-subjects-out folds of the *training* subjects:
# every recipe of RECIPES is trained once per fold (`har train --val-fold K/N`, the same
# subjects for every recipe and architecture) and scored on the held-out fold; the test split
# is never read. Then `python3 scripts/folds_table.py OUT_DIR NAME` prints mean ± sd over folds
# and the recipe chosen per architecture (highest mean validation macro-F1).
#
# usage: scripts/select_recipe.sh OUT_DIR NAME [har train options...]
#   e.g. scripts/select_recipe.sh runs folds-hapt6 --dataset data/hapt --classes 1,2,3,4,5,6 --epochs 12
# Environment: ARCHS [dmft gru-patches], RECIPES [scripts/recipes/student.txt], FOLDS [3],
# SEED [1], HAR [target/release/har]. Names ending in -teacher train the teacher shape.
set -euo pipefail
out=${1:?usage: select_recipe.sh OUT_DIR NAME [har train options...]}
name=${2:?usage: select_recipe.sh OUT_DIR NAME [har train options...]}
shift 2
har=${HAR:-target/release/har}
recipes=${RECIPES:-$(dirname "$0")/recipes/student.txt}
folds=${FOLDS:-3}
mkdir -p "$out"
for arch in ${ARCHS:-dmft gru-patches}; do
  shape=(--student --arch "$arch")
  [ "${arch%-teacher}" != "$arch" ] && shape=(--arch "${arch%-teacher}")
  grep -v '^\s*#' "$recipes" | grep ':' | while IFS=: read -r recipe options; do
    for ((fold = 1; fold <= folds; fold++)); do
      run="$out/$name-$arch-$recipe-f$fold"
      [ -f "$run/model.json" ] && continue
      # shellcheck disable=SC2086 # the recipe's options are words
      "$har" train "$@" $options "${shape[@]}" --seed "${SEED:-1}" --val-fold "$fold/$folds" \
        --out "$run" > "$run.train.log" 2>&1
      echo "$name $arch $recipe fold $fold/$folds: $(grep -o 'best epoch.*' "$run.train.log")"
    done
  done
done
