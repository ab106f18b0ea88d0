#!/usr/bin/env bash
# Overload benchmark (release build): dataflows/hapt-32-devices-realtime.yml with 64, 256 and
# 1000 devices in real time (a window every 0.2 s per device), DURATION seconds each (default
# 120). What the overload policy must show (docs/reliability.md): bounded latency (near
# HAR_MAX_LAG_MS at worst), counted shedding at the source instead of unbounded queues, and
# flat memory. Figures are read back from the Parquet logs with `har sql`.
# Usage: scripts/bench_overload.sh [DURATION_S] [DEVICES...]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-120}"
shift || true
devices=("${@:-64 256 1000}")
read -r -a devices <<< "${devices[*]}"
source scripts/ensure_dora.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p har-sensor-ingest -p har-preprocess -p har-encode -p har-fuse -p har-log
cargo build --locked -p har-cli
har="$CARGO_TARGET_DIR/debug/har"
out="$(mktemp -d)"
trap 'rm -f dataflows/.overload-*.yml' EXIT

for n in "${devices[@]}"; do
  yml="dataflows/.overload-$n.yml"
  sed -e "s|HAR_LOG_DIR: .*|HAR_LOG_DIR: $out/$n|" -e "s|HAR_COPIES: .*|HAR_COPIES: $n|" \
      -e "s|\.\./target/release/|$CARGO_TARGET_DIR/release/|" -e "/build:/d" \
      dataflows/hapt-32-devices-realtime.yml > "$yml"
  echo "== $n devices in real time for ${duration} s"
  dora run --stop-after "${duration}s" "$yml" > "$out/$n.log" 2>&1 || true
  $har sql --log-dir "$out/$n" "SELECT count(*) AS predicted, \
    round(count(*) / ((max(logged_ts_ns) - min(ingest_ts_ns)) / 1e9)) AS windows_per_s, \
    round(approx_percentile_cont(e2e_latency_us, 0.5) / 1e3, 1) AS p50_ms, \
    round(approx_percentile_cont(e2e_latency_us, 0.99) / 1e3, 1) AS p99_ms, \
    round(max(e2e_latency_us) / 1e3, 1) AS max_ms, \
    sum(CASE WHEN degraded THEN 1 ELSE 0 END) AS degraded FROM predictions"
  $har sql --log-dir "$out/$n" "WITH t AS (SELECT min(ts_ns) AS t0, max(ts_ns) AS t1 FROM node_health) \
    SELECT node, max(sent) AS sent, max(dropped) AS dropped, max(degraded) AS degraded, \
    round(max(CASE WHEN ts_ns < t0 + 30e9 THEN rss_bytes END) / 1048576.0, 1) AS first_30s_mib, \
    round(max(CASE WHEN ts_ns > t1 - 30e9 THEN rss_bytes END) / 1048576.0, 1) AS last_30s_mib \
    FROM node_health, t GROUP BY node ORDER BY node"
done
echo "logs and dora output: $out"
