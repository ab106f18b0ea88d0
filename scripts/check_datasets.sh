#!/usr/bin/env bash
# Fetches and imports the real datasets with the `har` binary and checks the figures the
# foundation promises: HAPT 128/64 pure windows on the UCI cross-subject split (7,143 / 2,874
# for the 6 activities, 7,368 / 2,993 with all 12 classes), BasicMotions 40 / 40 cases over 4
# classes, the CMU BVH mocap as a 31-joint, 120 Hz skeleton, and seglearn's smartwatch set
# through `har data import table` (140 recordings, 8 / 2 subjects).
# Usage: scripts/check_datasets.sh PATH_TO_HAR [DATA_DIR]
set -euo pipefail
har=${1:?usage: check_datasets.sh PATH_TO_HAR [DATA_DIR]}
data=${2:-data}
passed=0
failed=0

check() { # name, actual, expected
  if [ "$2" = "$3" ]; then
    echo "ok   $1 = $2"
    passed=$((passed + 1))
  else
    echo "FAIL $1 = $2, expected $3"
    failed=$((failed + 1))
  fi
}

json_get() { # file, python expression over `d`
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

"$har" data fetch hapt --data-dir "$data"
"$har" data import hapt --data-dir "$data"
"$har" data inspect "$data/hapt" --classes 1,2,3,4,5,6 --json > "$data/hapt6.json"
"$har" data inspect "$data/hapt" --json > "$data/hapt12.json"
check "HAPT recordings" "$(json_get "$data/hapt12.json" "d['splits']['train']['recordings'] + d['splits']['test']['recordings']")" 61
check "HAPT subjects train/test" "$(json_get "$data/hapt12.json" "(d['splits']['train']['subjects'], d['splits']['test']['subjects'])")" "(21, 9)"
check "HAPT samples" "$(json_get "$data/hapt12.json" "d['splits']['train']['align']['grid_samples'] + d['splits']['test']['align']['grid_samples']")" 1122772
check "HAPT 6-class windows train/test" "$(json_get "$data/hapt6.json" "(d['splits']['train']['windows'], d['splits']['test']['windows'])")" "(7143, 2874)"
check "HAPT 12-class windows train/test" "$(json_get "$data/hapt12.json" "(d['splits']['train']['windows'], d['splits']['test']['windows'])")" "(7368, 2993)"
check "HAPT source checksum" "$(json_get "$data/hapt12.json" "d['source']['sha256']")" c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8

"$har" data fetch basic-motions --data-dir "$data"
"$har" data import basic-motions --data-dir "$data"
"$har" data inspect "$data/basic_motions" --window 100 --stride 100 --json > "$data/bm.json"
check "BasicMotions windows train/test" "$(json_get "$data/bm.json" "(d['splits']['train']['windows'], d['splits']['test']['windows'])")" "(40, 40)"
check "BasicMotions classes" "$(json_get "$data/bm.json" "sorted(d['splits']['test']['windows_per_class'].items())")" "[('Badminton', 10), ('Running', 10), ('Standing', 10), ('Walking', 10)]"

"$har" data import bvh --data-dir "$data"
"$har" data inspect "$data/cmu_bvh" --json > "$data/bvh.json"
check "CMU BVH skeleton joints, rate" "$(json_get "$data/bvh.json" "(len(d['modalities'][0]['joints']), round(d['modalities'][0]['sample_rate_hz']))")" "(31, 120)"
check "CMU BVH recordings" "$(json_get "$data/bvh.json" "d['splits']['train']['recordings']")" 2

# A public set with no importer of its own, through the generic table import.
HAR="$har" scripts/import_seglearn_watch.sh "$data" > "$data/watch-import.txt"
"$har" data inspect "$data/seglearn_watch" --json > "$data/watch.json"
check "seglearn watch recordings, subjects train/test" "$(json_get "$data/watch.json" "(d['splits']['train']['recordings'] + d['splits']['test']['recordings'], d['splits']['train']['subjects'], d['splits']['test']['subjects'])")" "(140, 8, 2)"
check "seglearn watch samples" "$(json_get "$data/watch.json" "d['splits']['train']['align']['grid_samples'] + d['splits']['test']['align']['grid_samples']")" 244102
check "seglearn watch windows train/test" "$(json_get "$data/watch.json" "(d['splits']['train']['windows'], d['splits']['test']['windows'])")" "(2994, 611)"

echo "dataset checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
