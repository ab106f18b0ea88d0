#!/usr/bin/env bash
# The test command: builds every crate (the dataflow tests run the node binaries under
# `dora run`), installs the dora CLI and pyarrow if they are missing, then runs the whole test
# suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
# pyarrow: tests/recording_format.rs runs the pyarrow snippet of docs/recording-format.md.
if ! python3 -c "import pyarrow" 2>/dev/null; then
  echo "installing pyarrow with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check pyarrow \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages pyarrow
fi
cargo build --workspace --locked
cargo test --workspace --locked "$@"
