"""Flattens seglearn's smartwatch set (a pickled dict of arrays in seglearn 1.2.5's wheel) into
plain tables, the way a user would before `har data import table`: one Parquet file per
subject, written by pandas with its defaults, one row per sample.

usage: python3 to_tables.py WATCH_DATASET_NPY OUT_DIR
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd

source, out = Path(sys.argv[1]), Path(sys.argv[2])
data = np.load(source, allow_pickle=True).item()
out.mkdir(parents=True, exist_ok=True)
frames = {}
for i, (x, y, subject, side) in enumerate(zip(data["X"], data["y"], data["subject"], data["side"])):
    frame = pd.DataFrame(x, columns=data["X_labels"])  # ax ay az wx wy wz
    frame.insert(0, "recording", i)
    frame.insert(1, "exercise", int(y))
    frame.insert(2, "side", "right" if side == 1 else "left")
    frames.setdefault(int(subject), []).append(frame)
for subject, parts in sorted(frames.items()):
    pd.concat(parts).to_parquet(out / f"subject_{subject:02d}.parquet", index=False)
print(f"wrote {len(frames)} subject files, {len(data['X'])} recordings, to {out}")
