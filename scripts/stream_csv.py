#!/usr/bin/env python3
"""Plays a recording of the recording format as live CSV sample lines, the input format of
sensor-ingest's live source (HAR_SOURCE=stdin, tcp:PORT or tcp:HOST:PORT):

    device_id,subject_id,modality,timestamp_ns,v1,...,vC

Samples of all modalities are merged in time order and paced at SPEED x real time (0: as
fast as possible). Timestamps are shifted to the wall clock at start, as a live device's
would be. Needs pyarrow (installed with the dora CLI).

    python3 scripts/stream_csv.py samples/hapt-user02 --speed 1 | nc localhost 7000
"""
import argparse
import heapq
import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq


def samples(folder, name):
    """The (timestamp_ns, name, values) samples of one modality's Parquet file, in time order."""
    table = pq.read_table(folder / f"{name}.parquet")
    for t, v in zip(table.column("timestamp_ns").to_pylist(), table.column("values").to_pylist()):
        yield t, name, v


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="dataset folder (dataset.json + recordings/)")
    parser.add_argument("--recording", help="recording id (default: the first)")
    parser.add_argument("--device", default="live-0", help="device id to send")
    parser.add_argument("--speed", type=float, default=1.0, help="multiple of real time; 0 = no pacing")
    args = parser.parse_args()

    manifest = json.loads((args.dataset / "dataset.json").read_text())
    entry = next(r for r in manifest["recordings"] if args.recording in (None, r["id"]))
    folder = args.dataset / "recordings" / entry["id"]
    # One (timestamp, modality, values) iterator per modality; the name is bound per stream (a
    # generator expression would read the loop variable late and label every line with the
    # last modality).
    streams = [samples(folder, modality["name"]) for modality in manifest["modalities"]]
    origin_ns = time.time_ns()
    started = time.monotonic()
    out = sys.stdout
    for t, name, values in heapq.merge(*streams, key=lambda s: s[0]):
        if args.speed > 0:
            delay = t / 1e9 / args.speed - (time.monotonic() - started)
            if delay > 0:
                out.flush()
                time.sleep(delay)
        out.write(f"{args.device},{entry['subject_id']},{name},{origin_ns + t},"
                  + ",".join(f"{v:.6g}" for v in values) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
