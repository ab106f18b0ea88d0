#!/usr/bin/env bash
# SQL over months of logs (issue 21): ROWS (default 10 million) SYNTHETIC prediction rows in
# FILES (default 5,000) small files per run — what a long run's 2-second flushes leave
# behind — the README's queries timed (best of 3 runs of `har sql`, process start included),
# then `har logs compact` and the same queries again. Release build. Usage:
#   scripts/bench_sql.sh [DIR]            (DIR default /tmp/har-bench-sql, removed first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
FILES=${FILES:-5000}
DIR=${1:-/tmp/har-bench-sql}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked -p har-cli
har=$CARGO_TARGET_DIR/release/har
rm -rf "$DIR"
$har logs synth --log-dir "$DIR" --rows "$ROWS" --files "$FILES"
QUERIES=(
  "SELECT predicted_name, count(*) AS windows FROM predictions GROUP BY 1 ORDER BY 2 DESC"
  "SELECT approx_percentile_cont(e2e_latency_us, 0.5) AS p50_us, approx_percentile_cont(e2e_latency_us, 0.99) AS p99_us FROM predictions"
  "SELECT subject_id, count(*) AS windows, avg(CASE WHEN predicted_label = true_label THEN 1.0 ELSE 0.0 END) AS accuracy FROM predictions WHERE true_label BETWEEN 1 AND 6 GROUP BY 1 ORDER BY 1"
  "SELECT node, max(received), max(sent), max(dropped), max(degraded) FROM node_health WHERE run_id = 'synthetic-0000' GROUP BY node"
)
NAMES=("counts per class" "latency percentiles" "per-subject accuracy" "node_health summary")
time_queries() {
  local layout=$1
  for i in "${!QUERIES[@]}"; do
    best=""
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      $har sql --log-dir "$DIR" "${QUERIES[$i]}" > /dev/null
      end=$(date +%s.%N)
      t=$(awk "BEGIN { print $end - $start }")
      if [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then best=$t; fi
    done
    printf '%s\t%s\t%.3f s\n' "$layout" "${NAMES[$i]}" "$best"
  done
}
files() { find "$DIR/predictions" -name '*.parquet' | wc -l; }
echo "== $(files) prediction files"
time_queries "uncompacted"
$har logs compact --log-dir "$DIR" --min-age-s 0
echo "== $(files) prediction files"
time_queries "compacted"
