"""Two builds, row by row and column by column: what a change of the builder's code changed in its output.

    python bench/compare_builds.py BEFORE AFTER [--ignore config_fingerprint]

Rows are matched by ``id``. Images (PNG structs, lists of them) are compared by their decoded pixels, not
their bytes; ``flow`` as float16 arrays; every other column by value (floats exactly). Prints, per column,
how many rows differ, and the first differing row; columns only one build has are named. Exit status 0
when nothing differs outside the ignored columns, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from unimer_builder.shards import read_shard


def _table(out: Path) -> pa.Table:
    files = sorted((out / "data").glob("train-*.parquet"))
    if not files:
        raise SystemExit(f"{out / 'data'}: no shards")
    return pa.concat_tables([read_shard(f) for f in files])


def _pixels(img: dict | None):
    if img is None or img.get("bytes") is None:
        return None
    return cv2.imdecode(np.frombuffer(img["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)


def _same(name: str, a, b) -> bool:
    if name == "flow":
        return np.array_equal(np.asarray(a, np.float16), np.asarray(b, np.float16), equal_nan=True)
    if isinstance(a, dict) and "bytes" in a:
        pa_, pb = _pixels(a), _pixels(b)
        return (pa_ is None and pb is None) or (pa_ is not None and pb is not None and np.array_equal(pa_, pb))
    if isinstance(a, list) and a and isinstance(a[0], dict) and "bytes" in a[0]:
        return len(a) == len(b) and all(_same(name, x, y) for x, y in zip(a, b, strict=True))
    return _equal(a, b)


def _equal(a, b) -> bool:
    """``a == b`` through lists and structs, NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def compare(before: Path, after: Path, ignore: set[str]) -> int:
    a, b = _table(before), _table(after)
    only_a = [c for c in a.column_names if c not in b.column_names]
    only_b = [c for c in b.column_names if c not in a.column_names]
    common = [c for c in a.column_names if c in b.column_names]
    ids_a, ids_b = a.column("id").to_pylist(), b.column("id").to_pylist()
    print(f"{before}: {a.num_rows} rows; {after}: {b.num_rows} rows; row order "
          f"{'the same' if ids_a == ids_b else 'differs'}")
    if set(ids_a) != set(ids_b):
        print(f"rows only in {before}: {sorted(set(ids_a) - set(ids_b))[:10]}; only in {after}: "
              f"{sorted(set(ids_b) - set(ids_a))[:10]}")
    if only_a or only_b:
        print(f"columns only in {before}: {only_a or 'none'}; only in {after}: {only_b or 'none'}")
    where_b = {i: k for k, i in enumerate(ids_b)}
    rows = [(i, where_b[r]) for i, r in enumerate(ids_a) if r in where_b]
    bad = 0
    for col in common:
        xa, xb = a.column(col).to_pylist(), b.column(col).to_pylist()
        diff = [ids_a[i] for i, j in rows if not _same(col, xa[i], xb[j])]
        status = "ignored" if col in ignore else ("same" if not diff else f"DIFFERS in {len(diff)} rows")
        print(f"  {col:22s} {status}" + (f" (first: {diff[0]})" if diff else ""))
        if diff and col not in ignore:
            bad += 1
    print(f"{len(common)} common columns x {len(rows)} matched rows compared: "
          f"{'no difference' if not bad else f'{bad} columns differ'}" + (f" (ignored: {sorted(ignore)})" if ignore else ""))
    return 1 if bad or set(ids_a) != set(ids_b) else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=[], help="columns expected to differ (e.g. config_fingerprint)")
    args = ap.parse_args()
    sys.exit(compare(args.before, args.after, set(args.ignore)))


if __name__ == "__main__":
    main()
