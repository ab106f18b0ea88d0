#!/usr/bin/env bash
# The test command: builds every crate (the dataflow tests run the node binaries under
# `dora run`), installs the dora CLI and the Python packages the tests run if they are missing, then runs the whole test
# suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_dora.sh
# Python: the tests run the pyarrow snippet of docs/recording-format.md, the pyarrow / pandas
# / DuckDB snippets of docs/dataflow.md, pandas-written tables through `har data import table`
# and the onnxruntime snippet of docs/onnx.md.
if ! python3 -c "import pyarrow, pandas, duckdb, onnxruntime" 2>/dev/null; then
  echo "installing pyarrow, pandas, duckdb and onnxruntime with pip" >&2
  python3 -m pip install --quiet --disable-pip-version-check pyarrow pandas duckdb onnxruntime \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      pyarrow pandas duckdb onnxruntime
fi
cargo build --workspace --locked
cargo test --workspace --locked "$@"
