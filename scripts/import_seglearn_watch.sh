#!/usr/bin/env bash
# Imports a public wearable set the project has no importer for, the way a user would:
# seglearn's smartwatch set (10 people, 7 shoulder exercises, acc + gyro at 50 Hz), shipped as
# a pickle inside the seglearn==1.2.5 wheel on PyPI. pip downloads the wheel (checksum pinned),
# examples/seglearn-watch/to_tables.py flattens it into one Parquet table per subject with
# pandas' defaults, and `har data import table` turns the tables into a dataset folder with
# examples/seglearn-watch/mapping.toml.
#
# usage: scripts/import_seglearn_watch.sh [DATA_DIR]   (default: data)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
sha=ec6b952c85c9627050102854b372d85951563d3b990df677d7c55547e87413dd
wheel="$data/downloads/seglearn-1.2.5-py3-none-any.whl"
raw="$data/raw/seglearn_watch"
python=${HAR_PYTHON:-python3}
if [ ! -f "$wheel" ]; then
  "$python" -m pip download --no-deps --disable-pip-version-check --only-binary :all: \
    -d "$data/downloads" seglearn==1.2.5
fi
echo "$sha  $wheel" | sha256sum --check --quiet
mkdir -p "$raw"
"$python" - "$wheel" "$raw" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    with open(f"{sys.argv[2]}/watch_dataset.npy", "wb") as out:
        out.write(wheel.read("seglearn/data/watch_dataset.npy"))
PY
"$python" -c "import numpy, pandas, pyarrow" 2>/dev/null ||
  "$python" -m pip install --quiet --disable-pip-version-check numpy pandas pyarrow
"$python" examples/seglearn-watch/to_tables.py "$raw/watch_dataset.npy" "$raw/tables"
har=${HAR:-}
if [ -z "$har" ]; then
  cargo build --quiet -p har-cli
  har="${CARGO_TARGET_DIR:-target}/debug/har"
fi
"$har" data import table --mapping examples/seglearn-watch/mapping.toml \
  --src "$raw/tables" --out "$data/seglearn_watch"
