#!/usr/bin/env bash
# Dataflow benchmarks (release build), figures read back from the Parquet logs with `har sql`:
#  1. throughput: dataflows/hapt-max-speed.yml with 1 and with 32 devices — windows per second
#     from the first window's ingest to the last prediction's logging;
#  2. latency: dataflows/hapt-32-devices-realtime.yml — 32 devices in real time, 50 Hz, a
#     window every 0.2 s each, for DURATION seconds (default 120); p50/p99/max end-to-end
#     latency (last sample of a window ingested → prediction logged) and per stage;
#  3. memory: each node's resident memory (node_health) in the first and the last minute.
# Usage: scripts/bench_dataflow.sh [DURATION_S]   (600 for the 10-minute soak)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-120}"
source scripts/ensure_dora.sh
export CARGO_TARGET_DIR="$PWD/target"
cargo build --release --locked -p har-sensor-ingest -p har-preprocess -p har-encode -p har-fuse -p har-log
cargo build --locked -p har-cli
har=target/debug/har
out="$(mktemp -d)"
trap 'rm -f dataflows/.bench-*.yml' EXIT

# A copy of a graph (in dataflows/, so its relative paths hold) with settings replaced.
variant() {
  local template="$1" name="$2"; shift 2
  local args=(-e "s|HAR_LOG_DIR: .*|HAR_LOG_DIR: $out/$name|")
  for kv in "$@"; do args+=(-e "s|${kv%%=*}: .*|${kv%%=*}: ${kv#*=}|"); done
  sed "${args[@]}" "dataflows/$template" > "dataflows/.bench-$name.yml"
  echo "dataflows/.bench-$name.yml"
}

# One device plays its recording 10 times (17,900 windows) in bigger messages; 32 devices once.
for setup in "1 10 20000" "32 1 4000"; do
  read -r copies laps batch_ms <<< "$setup"
  echo "== throughput, $copies device(s), as fast as possible"
  dora run "$(variant hapt-max-speed.yml "max-$copies" "HAR_COPIES=$copies" "HAR_LAPS=$laps" "HAR_BATCH_MS=$batch_ms")" > "$out/max-$copies.log" 2>&1
  $har sql --log-dir "$out/max-$copies" "SELECT count(*) AS windows, \
    round((max(logged_ts_ns) - min(ingest_ts_ns)) / 1e9, 3) AS seconds, \
    round(count(*) / ((max(logged_ts_ns) - min(ingest_ts_ns)) / 1e9)) AS windows_per_s, \
    sum(CASE WHEN degraded THEN 1 ELSE 0 END) AS degraded FROM predictions"
  $har sql --log-dir "$out/max-$copies" "SELECT node, max(dropped) AS dropped FROM node_health GROUP BY node ORDER BY node"
done

laps=$(( duration / 360 + 1 ))
echo "== latency, 32 devices in real time for ${duration} s"
dora run --stop-after "${duration}s" "$(variant hapt-32-devices-realtime.yml realtime "HAR_LAPS=$laps")" > "$out/realtime.log" 2>&1 || true
$har sql --log-dir "$out/realtime" "SELECT count(*) AS windows, \
  round(approx_percentile_cont(e2e_latency_us, 0.5)) AS p50_us, \
  round(approx_percentile_cont(e2e_latency_us, 0.99)) AS p99_us, round(max(e2e_latency_us)) AS max_us, \
  round(approx_percentile_cont(preprocess_latency_us, 0.5)) AS pre_p50_us, \
  round(approx_percentile_cont(encode_latency_us, 0.5)) AS enc_p50_us, \
  round(approx_percentile_cont(fuse_latency_us, 0.5)) AS fuse_p50_us, \
  sum(CASE WHEN degraded THEN 1 ELSE 0 END) AS degraded FROM predictions"
echo "== memory per node (MiB): first minute vs last minute"
$har sql --log-dir "$out/realtime" "WITH t AS (SELECT min(ts_ns) AS t0, max(ts_ns) AS t1 FROM node_health) \
  SELECT node, round(max(CASE WHEN ts_ns < t0 + 60e9 THEN rss_bytes END) / 1048576.0, 1) AS first_min_mib, \
  round(max(CASE WHEN ts_ns > t1 - 60e9 THEN rss_bytes END) / 1048576.0, 1) AS last_min_mib, \
  max(dropped) AS dropped FROM node_health, t GROUP BY node ORDER BY node"
echo "logs and dora output: $out"
