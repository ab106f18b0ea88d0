#!/usr/bin/env bash
# The test command: builds every crate (the dataflow tests run the node binaries under
# `dora run`), installs the dora CLI and the Python Parquet readers if they are missing, then runs the whole test
# suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
# Python readers: the tests run the pyarrow snippet of docs/recording-format.md and the
# pyarrow / pandas / DuckDB snippets of docs/dataflow.md.
if ! python3 -c "import pyarrow, pandas, duckdb" 2>/dev/null; then
  echo "installing pyarrow, pandas and duckdb with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check pyarrow pandas duckdb \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      pyarrow pandas duckdb
fi
cargo build --workspace --locked
cargo test --workspace --locked "$@"
