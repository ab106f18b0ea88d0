#!/usr/bin/env bash
# The main job on a fresh machine: installs the dora CLI if missing, builds the nodes, runs
# the default dataflow (a HAPT test subject replayed through the shipped student) and queries
# the Parquet logs it wrote, then draws the timeline of the replayed device. dora's own output
# (every node's log lines) goes to logs/dora-run.log.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
# The yml's node paths are target/debug/…: build there whatever CARGO_TARGET_DIR says.
export CARGO_TARGET_DIR="$PWD/target"
cargo build --workspace --locked
mkdir -p logs
# `dora run` of a graph, its output in a log file; on failure the end of that file.
run_graph() {
  local yml=$1 log=$2
  if ! dora run "$yml" > "$log" 2>&1; then
    echo "dora run failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}
echo "== dora run dataflow.yml (the nodes' output: logs/dora-run.log)"
run_graph dataflow.yml logs/dora-run.log

har=target/debug/har
latest="run_id = (SELECT run_id FROM predictions ORDER BY logged_ts_ns DESC LIMIT 1)"
echo "== predictions per class (this run)"
$har sql "SELECT predicted_name, count(*) AS windows FROM predictions WHERE $latest GROUP BY 1 ORDER BY 2 DESC"
echo "== accuracy against ground truth per subject (the 6 activities the model knows)"
$har sql "SELECT subject_id, count(*) AS windows, round(avg(CASE WHEN predicted_label = true_label THEN 1.0 ELSE 0.0 END), 4) AS accuracy FROM predictions WHERE $latest AND true_label BETWEEN 1 AND 6 GROUP BY 1"
echo "== end-to-end latency (µs)"
$har sql "SELECT count(*) AS windows, round(approx_percentile_cont(e2e_latency_us, 0.5), 1) AS p50_us, round(approx_percentile_cont(e2e_latency_us, 0.99), 1) AS p99_us FROM predictions WHERE $latest"
echo "== node health (this run): received / sent / dropped / degraded"
$har sql "SELECT node, max(received) AS received, max(sent) AS sent, max(dropped) AS dropped, max(degraded) AS degraded FROM node_health WHERE $latest GROUP BY 1 ORDER BY 1"
echo "== activity segments (this run): minutes per activity per subject"
$har sql "SELECT subject_id, name, count(*) AS segments, round(sum(duration_s) / 60, 2) AS minutes FROM segments WHERE $latest GROUP BY 1, 2 ORDER BY 4 DESC"
echo "== timeline of the replayed device (segments, truth, predicted)"
$har plot timeline --log-dir logs --out logs/timeline.png

echo "== the segmentation model in the graph (dataflows/hapt-segmenter.yml; output: logs/dora-run-segmenter.log)"
run_graph dataflows/hapt-segmenter.yml logs/dora-run-segmenter.log
model_run="run_id = (SELECT run_id FROM segments WHERE model_id LIKE 'hapt-segmenter@%' ORDER BY closed_ts_ns DESC LIMIT 1)"
echo "== its segments: minutes per activity (12 classes, transitions included)"
$har sql "SELECT name, count(*) AS segments, round(sum(duration_s) / 60, 2) AS minutes FROM segments WHERE $model_run GROUP BY 1 ORDER BY 3 DESC"
echo "== its first segments"
$har sql "SELECT segment_id, name, round(start_ns / 1e9, 2) AS start_s, round(duration_s, 2) AS seconds, round(confidence, 3) AS confidence FROM segments WHERE $model_run ORDER BY segment_id LIMIT 12"

echo "== several people at once: a generated three-person scene (dataflows/hapt-scene.yml; output: logs/dora-run-scene.log)"
run_graph dataflows/hapt-scene.yml logs/dora-run-scene.log
scene_run="run_id = (SELECT run_id FROM scenes ORDER BY closed_ts_ns DESC LIMIT 1)"
echo "== the scene's label sets over time (windows of 2.56 s)"
$har sql "SELECT scene_labels, count(DISTINCT window_id) AS windows FROM scenes WHERE $scene_run GROUP BY 1 ORDER BY 2 DESC"
echo "== each member's accuracy with the others' context, and the classifier alone"
$har sql "SELECT s.device_id, s.subject_id, round(avg(CASE WHEN s.activity_label = s.true_label THEN 1.0 ELSE 0.0 END), 4) AS with_context, round(avg(CASE WHEN p.predicted_label = p.true_label THEN 1.0 ELSE 0.0 END), 4) AS alone FROM scenes s JOIN predictions p ON s.run_id = p.run_id AND s.device_id = p.device_id AND s.window_id = p.window_id WHERE s.$scene_run AND s.true_label IS NOT NULL GROUP BY 1, 2 ORDER BY 1"
