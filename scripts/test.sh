#!/usr/bin/env bash
# The test command: builds every crate (the dataflow tests run the node binaries under
# `dora run`), installs the dora CLI if it is missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
cargo build --workspace --locked
cargo test --workspace --locked "$@"
