#!/usr/bin/env bash
# The graph across three dora daemons on this host (dataflows/hapt-multi-machine.yml: ingest /
# compute / store), each on its own ports, loopback only; stops them after. Extra arguments go
# to `dora start` (e.g. nothing, or `--name demo`). For real hosts see docs/dataflow.md,
# "Several machines".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
export CARGO_TARGET_DIR="$PWD/target"
cargo build --workspace --locked
COORDINATOR_PORT=${COORDINATOR_PORT:-6013}
ZENOH_PEER=${ZENOH_PEER:-tcp/127.0.0.1:7447}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p logs
dora coordinator --port "$COORDINATOR_PORT" --quiet > logs/coordinator.log 2>&1 & pids+=($!)
sleep 1
port=53301
for machine in ingest compute store; do
  dora daemon --machine-id "$machine" --coordinator-port "$COORDINATOR_PORT" \
    --local-listen-port "$port" --zenoh-peer "$ZENOH_PEER" > "logs/daemon-$machine.log" 2>&1 & pids+=($!)
  port=$((port + 1))
done
for _ in $(seq 1 50); do
  status=$(dora cluster status --coordinator-port "$COORDINATOR_PORT" 2>/dev/null || true)
  if echo "$status" | grep -q "ingest-" && echo "$status" | grep -q "compute-" && echo "$status" | grep -q "store-"; then break; fi
  sleep 0.3
done
dora start --attach --coordinator-port "$COORDINATOR_PORT" dataflows/hapt-multi-machine.yml "$@"
